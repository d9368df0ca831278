"""Images in the evaluator's pages: crisp at a whole-number scale, as large as the screen allows, zoomable."""
import pytest
from PIL import Image as PILImage
from playwright.sync_api import expect

from tests.e2e.conftest import answer_any, next_task, settled
from tests.factories import build_open_study
from webapp.studies.models import Image

SMALL = 24


@pytest.fixture
def study(transactional_db, settings):
    """The factory's open study, with every image replaced by a 24x24 one (the demo models' size)."""
    study = build_open_study(n_slots=2)
    for img in Image.objects.filter(study=study):
        path = settings.MEDIA_ROOT / img.file
        PILImage.open(path).convert("RGB").resize((SMALL, SMALL), PILImage.Resampling.NEAREST).save(path)
        img.width = img.height = SMALL
        img.save(update_fields=["width", "height"])
    return study


def _to_first(page, live_server, study, kind, *, joined=False):
    """Join (unless ``joined``) and answer tasks until one of ``kind`` is shown."""
    if not joined:
        page.goto(f"{live_server.url}/join/{study.invite_token}/?PROLIFIC_PID=img-worker")
        page.click("button[name=agree][value=yes]")
        page.click("#start")
    while True:
        page.wait_for_selector("#answer-form, #rank-form")
        settled(page)
        if page.query_selector("#answer-form" if kind == "count" else "#rank-form"):
            return
        answer_any(page)


def _rendering(page, selector):
    image = page.locator(selector)
    expect(image).to_have_js_property("complete", True)
    expect(image).not_to_have_js_property("naturalWidth", 0)
    return page.evaluate("""s => { const i = document.querySelector(s); const r = i.getBoundingClientRect();
        return {rendering: getComputedStyle(i).imageRendering, width: r.width, height: r.height,
                natural: i.naturalWidth, viewport: window.innerWidth}; }""", selector)


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)])
def test_a_24px_count_image_is_pixelated_at_a_whole_multiple_filling_the_room(browser, live_server, study, viewport):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    _to_first(page, live_server, study, "count")
    r = _rendering(page, "#count-image")
    assert r["rendering"] == "pixelated"
    assert r["natural"] == SMALL
    scale = r["width"] / SMALL
    assert scale == int(scale) and r["height"] == r["width"]
    # As large as the room allows: one more step of magnification would not fit.
    assert r["width"] + SMALL > min(viewport[0] - 32, viewport[1] - 250)
    assert r["width"] <= viewport[0]
    context.close()


def test_a_click_and_z_zoom_in_and_out_by_whole_steps(page, live_server, study):
    _to_first(page, live_server, study, "count")
    before = _rendering(page, "#count-image")["width"]
    page.click("#count-image")
    zoomed = _rendering(page, "#count-image")
    # As large as the whole viewport allows, at a whole multiple, and never cropped.
    assert zoomed["width"] > before and zoomed["width"] % SMALL == 0
    box = page.locator("#count-image").bounding_box()
    view = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0
    assert box["x"] + box["width"] <= view["width"] and box["y"] + box["height"] <= view["height"]
    page.keyboard.press("z")
    assert _rendering(page, "#count-image")["width"] == before


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)])
def test_ranking_tiles_are_pixelated_at_a_whole_multiple_and_fill_a_phone(browser, live_server, study, viewport):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    _to_first(page, live_server, study, "rank")
    for k in range(4):  # fitted on load
        expect(page.locator(".tile img").nth(k)).to_have_js_property("complete", True)
    page.wait_for_timeout(100)  # the load handlers have run
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('.tile img')).map(i => {
        const r = i.getBoundingClientRect(); return [getComputedStyle(i).imageRendering, r.width, r.height]; })""")
    assert len(sizes) == 4
    for rendering, width, height in sizes:
        assert rendering == "pixelated" and width == height and (width / SMALL) == int(width / SMALL)
    if viewport[0] < 600:
        grid = page.locator(".grid4").bounding_box()
        # Two images per row take most of the width (within one magnification step each).
        assert 2 * sizes[0][1] + 2 * SMALL + 24 > grid["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
    context.close()


def test_ranking_keyboard_space_enter_one_number_and_partial_kept(page, live_server, study):
    _to_first(page, live_server, study, "rank")
    tiles = page.locator(".tile")
    # Before ranking, each tile shows only its key; the rank menu (the no-script fallback) is hidden.
    assert tiles.nth(0).locator(".badge").is_hidden() and tiles.nth(0).locator(".key").is_visible()
    assert tiles.nth(0).locator("select").is_hidden()
    tiles.nth(2).focus()
    page.keyboard.press("Space")
    tiles.nth(0).focus()
    page.keyboard.press("Enter")
    assert tiles.nth(2).locator(".badge").inner_text() == "1"
    assert tiles.nth(0).locator(".badge").inner_text() == "2"
    assert tiles.nth(2).locator(".key").is_hidden()  # one number per tile: the rank
    page.locator("#submit").focus()
    page.keyboard.press("Enter")  # incomplete: an error, the two ranks stay
    page.wait_for_selector("#rank-error:visible")
    assert [tiles.nth(i).locator(".badge").inner_text() for i in range(4)] == ["2", "", "1", ""]
    page.keyboard.press("4")
    page.keyboard.press("2")
    with next_task(page):
        page.locator("#submit").focus()
        page.keyboard.press("Enter")
    page.wait_for_selector("#answer-form, #rank-form, #completion-code")


def _contrast(rgb_a: str, rgb_b: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""
    def luminance(css):
        r, g, b = (int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_controls_reach_3_to_1_contrast(page, live_server, study):
    """WCAG 1.4.11: the answer box's border, the focus ring and the tiles' borders against the page."""
    _to_first(page, live_server, study, "count")
    expect(page.locator("#answer")).to_be_focused()
    style = page.evaluate("""() => { const i = document.querySelector('#answer'), s = getComputedStyle(i);
        return {border: s.borderTopColor, outline: s.outlineColor,
                page: getComputedStyle(document.body).backgroundColor}; }""")
    for colour in (style["border"], style["outline"]):
        assert _contrast(colour, "rgb(255, 255, 255)") >= 3 and _contrast(colour, style["page"]) >= 3, colour
    _to_first(page, live_server, study, "rank", joined=True)
    page.locator(".tile").nth(0).focus()
    tile = page.evaluate("""() => { const s = getComputedStyle(document.querySelector('.tile'));
        return {border: s.borderTopColor, outline: s.outlineColor}; }""")
    for colour in tile.values():
        assert _contrast(colour, "rgb(255, 255, 255)") >= 3, colour
