"""The evaluator's way into a study: invite link, consent, instructions, practice (the tasks,
the completion page and the images are in ``task_views.py``, which uses the decorator here).

Views are thin: forms check shape, services check ownership and state and write. Nothing an
evaluator receives (URL, HTML, JSON, header, image) names a variant or checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit import ALL
from django_ratelimit.core import is_ratelimited
from django_ratelimit.decorators import ratelimit
from django_ratelimit.exceptions import Ratelimited

from evalstudy.protocol import Recruitment
from webapp.clientip import client_network

from . import joining, prolific, recruitment, selectors, sqlreads
from .models import Evaluator, Study
from .participant_forms import ParticipantIdForm, PracticeAnswerForm
from .practice import COUNT_NAME as PRACTICE_COUNT
from .practice import EXAMPLE_PREFIX as PRACTICE_EXAMPLE
from .practice import practice_picture, study_image_size

# The largest side, in CSS pixels, an image is given before the script fits it to the
# viewport (the page is usable without the script).
COUNT_BOX = 480
TILE_BOX = 256


READ_METHODS = ("GET", "HEAD")
TAKEOVER_SALT = "fusion-eval.takeover"
TAKEOVER_MAX_AGE = 15 * 60  # seconds the "continue here?" question stays valid
SIGNED_OUT_MESSAGE = (
    "You chose to go on with this study in another browser, so this one is signed out. "
    "Your answers are saved. To go on here instead, use your invite link again."
)


def _rate(setting: str) -> Callable[[str, HttpRequest], str]:
    """A django-ratelimit rate read from the settings when the request comes (tests change it)."""
    return lambda group, request: getattr(settings, setting)


# The heading of the page for a link whose ids are wrong: the study itself is available.
BAD_LINK_HEADING = "The ID in this link is not valid"
OTHER_SESSION_HEADING = "This place belongs to another session"
NOT_CONFIRMED_HEADING = "Prolific does not confirm this session"
UNREACHABLE_HEADING = "Your Prolific session could not be confirmed"
RELEASED_MESSAGE = ("Your place in this study was released (your submission was returned or timed out on the "
                    "panel, or the researchers released it). The answers you gave are kept. To take part again, "
                    "open the study from your panel's page for a new submission.")


def _unavailable(request: HttpRequest, study: Study, message: str, status: int, *, outcome: str = "",
                 heading: str = "") -> HttpResponse:
    """A page that says why the study cannot go on; for a closed or full study (``outcome``)
    with the panel's code and link back, when the protocol gives them. ``heading`` names the
    problem when it is not the study's (e.g. BAD_LINK_HEADING); else "Study unavailable"."""
    return render(
        request,
        "studies/unavailable.html",
        {
            "study": study,
            "message": message,
            "heading": heading,
            "link": recruitment.return_link(study, outcome) if outcome else None,
            "panel": recruitment.panel_name(recruitment.recruitment_of(study)),
        },
        status=status,
    )


ANSWER_RATE = ("studies.answer", "FUSION_RATE_ANSWER")
AWAY_RATE = ("studies.away", "FUSION_RATE_AWAY")


def evaluator_view(*, methods: tuple[str, ...] = READ_METHODS, consent_required: bool = False, answers: bool = False,
                   rate: tuple[str, str] | None = None,
                   ) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a view of ``/e/<slug>/...`` that belongs to the evaluator this browser holds.

    The wrapped view is called as ``view(request, study, evaluator, **url_arguments)``. A
    visitor who has not joined the study in this browser gets a 404, one whose evaluator
    another browser took over a 403 saying so; with ``consent_required``, an evaluator who
    has not agreed yet is sent to the consent page. Methods outside ``methods`` get a 405,
    and no answer is ever cached. With ``answers``, a POST counts against the evaluator's
    answer rate (FUSION_RATE_ANSWER); over it, a 429. ``rate`` (a django-ratelimit group and
    the setting that holds its rate) counts a POST against another rate per evaluator instead.
    """
    if answers:
        rate = ANSWER_RATE

    def decorator(view: Callable[[HttpRequest, Study, Evaluator], HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, slug: str, **kwargs: object) -> HttpResponse:

            # One query for the evaluator and its study; the study alone only for a visitor
            # this browser does not hold.
            evaluator = selectors.evaluator_from_session_by_slug(session=request.session, slug=slug)
            study = evaluator.study if evaluator is not None else get_object_or_404(Study, slug=slug)
            if evaluator is None:
                if selectors.session_signed_out(session=request.session, study=study):
                    released = selectors.session_released(session=request.session, study=study)
                    return _unavailable(request, study, RELEASED_MESSAGE if released else SIGNED_OUT_MESSAGE, 403)
                raise Http404("You have not joined this study.")
            if consent_required and evaluator.consented_at is None:
                return redirect("studies:consent", slug=slug)
            if (
                rate is not None
                and request.method == "POST"
                and is_ratelimited(
                    request,
                    group=rate[0],
                    key=lambda group, request: str(evaluator.pk),
                    rate=_rate(rate[1]),
                    method=ALL,
                    increment=True,
                )
            ):
                raise Ratelimited()
            return view(request, study, evaluator, **kwargs)

        return never_cache(require_http_methods(list(methods))(wrapped))

    return decorator


def _remember(request: HttpRequest, evaluator: Evaluator) -> None:
    """This browser holds ``evaluator`` from now on."""
    known = dict(request.session.get(selectors.SESSION_KEY, {}))
    known[str(evaluator.study_id)] = evaluator.pk
    request.session[selectors.SESSION_KEY] = known
    browsers = dict(request.session.get(selectors.BROWSER_SESSION_KEY, {}))
    browsers[str(evaluator.pk)] = evaluator.browser
    request.session[selectors.BROWSER_SESSION_KEY] = browsers


def _next_page(study: Study, evaluator: Evaluator) -> HttpResponse:
    if evaluator.consented_at is None:
        return redirect("studies:consent", slug=study.slug)
    return redirect("studies:task" if evaluator.started_at else "studies:instructions", slug=study.slug)


# --------------------------------------------------------------------------- completion


RETURN_AFTER_SECONDS = 5


def _done_page(request: HttpRequest, study: Study, evaluator: Evaluator, *, again: bool = False) -> HttpResponse:
    """The completion page: the code, and for a participant who came from a panel (an
    external id) the way back to it, taken automatically after RETURN_AFTER_SECONDS.
    Someone who came without a panel id has no panel account to go back to: the code
    only. ``again``: they finished before and came back (another browser, say)."""
    rec = recruitment.recruitment_of(study)
    link = recruitment.return_link(study, "completion")
    from_panel = bool(evaluator.external_id)
    return render(
        request,
        "studies/done.html",
        {
            "study": study,
            "progress": selectors.evaluator_progress(evaluator=evaluator),
            "again": again,
            "code": link.code if link else None,
            "return_url": link.href() if link and link.url and from_panel else None,
            "return_after": RETURN_AFTER_SECONDS,
            "panel": recruitment.panel_name(rec),
        },
    )



# --------------------------------------------------------------------------- joining


@never_cache
@require_http_methods(list(READ_METHODS))
@ratelimit(group="studies.join", key="ip", rate=_rate("FUSION_RATE_JOIN"), method=ALL, block=True)
def join(request: HttpRequest, invite_token: str) -> HttpResponse:
    """The per-study invite link. It may carry the panel's ids (e.g. Prolific's PROLIFIC_PID,
    STUDY_ID and SESSION_ID); when the protocol asks for a participant id and the link has
    none, the participant types it (sent back here as ``typed_id``)."""
    study = sqlreads.row(Study, invite_token=invite_token)  # get_object_or_404, in SQL made once per process
    if study is None:
        raise Http404("No Study matches the given query.")
    evaluator = selectors.evaluator_from_session(session=request.session, study=study)
    rec = recruitment.recruitment_of(study)
    ids = recruitment.ids_from_query(rec, request.GET)
    if evaluator is not None and _another_submission(rec, ids, evaluator):
        evaluator = None  # joined as the visitor of that submission's link, whom Prolific is asked about
    if evaluator is None:
        if ids.participant:
            # An id from the link is checked as a typed one is: a panel's placeholder left
            # unfilled, or what is not an id of this panel, is never stored.
            try:
                problem = recruitment.participant_id_problem(rec, joining.external_id_clean(ids.participant))
            except joining.InvalidExternalId as exc:
                problem = str(exc)
            if problem is not None:
                return _unavailable(request, study, problem, 400, heading=BAD_LINK_HEADING)
        problem = recruitment.link_ids_problem(rec, ids)
        if problem is not None:
            return _unavailable(request, study, problem, 400, heading=BAD_LINK_HEADING)
        if not ids.participant and rec is not None and rec.ask_participant_id and study.is_open:
            form = (
                ParticipantIdForm(request.GET, recruitment=rec)
                if "typed_id" in request.GET
                else ParticipantIdForm(recruitment=rec)
            )
            if not form.is_valid():
                return render(
                    request,
                    "studies/participant_id.html",
                    {
                        "study": study,
                        "form": form,
                        "panel": recruitment.panel_name(rec),
                        "carried": [(k, v) for k, v in request.GET.items() if k != "typed_id"],
                    },
                )
            ids = recruitment.PanelIds(participant=form.cleaned_data["typed_id"], study=ids.study, session=ids.session)
        if request.method == "HEAD":
            # A link checker or a preview (a mail scanner, a chat's unfurl) asks whether the
            # link works: it does, and nobody joins until a browser asks for the page.
            return HttpResponse(content_type="text/html; charset=utf-8")
        joined = _join_evaluator(request, study, recruitment.canonical_ids(rec, ids))
        if isinstance(joined, HttpResponse):
            return joined
        evaluator = joined
        _remember(request, evaluator)
    elif evaluator.finished_at is not None:  # back by the link after finishing, in this browser
        return _done_page(request, study, evaluator, again=True)
    return _next_page(study, evaluator)


def _another_submission(rec: Recruitment | None, ids: recruitment.PanelIds, evaluator: Evaluator) -> bool:
    """Whether, with Prolific's sessions confirmed (``prolific.check_applies``), the link
    names another submission of the participant whose place this browser holds: one who
    returned their submission and started again on Prolific, in the same browser. Their old
    place is not continued as if it were the new submission's; the join path decides (the
    old place passes to the new session when Prolific says the old one is over)."""
    if evaluator.finished_at is not None or not prolific.check_applies(rec):
        return False  # a finished place shows its code, as it always did
    ids = recruitment.canonical_ids(rec, ids)
    return (bool(ids.session) and ids.participant == evaluator.external_id
            and not constant_time_compare(ids.session, evaluator.external_session_id))


def _join_evaluator(request: HttpRequest, study: Study, ids: recruitment.PanelIds) -> Evaluator | HttpResponse:
    """The evaluator the visitor of the invite link becomes (``joining.evaluator_join``), or the
    page that says why not. For a Prolific study, with an API token set, Prolific confirms
    the link's session first (``prolific.SessionCheck``); a visitor with no participant id
    is known by this browser only and has no session to confirm."""
    rec = recruitment.recruitment_of(study)
    check = (prolific.SessionCheck(ids=ids, session=request.session, study_slug=study.slug)
             if ids.participant and prolific.check_applies(rec) else None)
    try:
        return joining.evaluator_join(
            study=study,
            external_id=ids.participant,
            user=request.user if request.user.is_authenticated else None,
            external_study_id=ids.study,
            external_session_id=ids.session,
            session_check=check,
        )
    except joining.SessionNotConfirmed as exc:
        return _unavailable(request, study, str(exc), 403, heading=NOT_CONFIRMED_HEADING)
    except joining.PanelUnreachable as exc:
        return _unavailable(request, study, str(exc), 503, heading=UNREACHABLE_HEADING)
    except joining.InvalidExternalId as exc:
        return _unavailable(request, study, str(exc), 400, heading=BAD_LINK_HEADING)
    except joining.HeldByAnotherSession as exc:
        return _unavailable(request, study, str(exc), 403, heading=OTHER_SESSION_HEADING)
    except joining.AlreadyCompleted as exc:
        return _done_page(request, study, exc.evaluator, again=True)
    except joining.StudyUnavailable as exc:
        return _unavailable(request, study, str(exc), 403, outcome=exc.reason)
    except joining.ActiveElsewhere as exc:
        # The evaluator by its random pseudonym: a row id would count the site's joins.
        held = {"e": exc.evaluator.pseudonym, "b": _browser_tag(exc.evaluator.browser)}
        ticket = signing.dumps(held, salt=TAKEOVER_SALT)
        return render(request, "studies/takeover.html", {"study": study, "ticket": ticket}, status=409)


@never_cache
@require_POST
@ratelimit(group="studies.join", key="ip", rate=_rate("FUSION_RATE_JOIN"), method=ALL, block=True)
def join_continue(request: HttpRequest, invite_token: str) -> HttpResponse:
    """ "Continue here": this browser takes the evaluator over, the other is signed out.

    The ticket comes from the question page of ``join``; it names the evaluator and the
    browser that held it then, so a ticket is good for one take-over, for a while.
    """
    study = get_object_or_404(Study, invite_token=invite_token)
    try:
        data = signing.loads(request.POST.get("ticket", ""), salt=TAKEOVER_SALT, max_age=TAKEOVER_MAX_AGE)
        evaluator = Evaluator.objects.get(pseudonym=str(data["e"]), study=study)
        if not constant_time_compare(str(data["b"]), _browser_tag(evaluator.browser)):
            raise Evaluator.DoesNotExist  # another browser holds it now: the ticket is spent
    except (signing.BadSignature, KeyError, TypeError, ValueError, Evaluator.DoesNotExist):
        return _unavailable(request, study, "This question has expired. Use your invite link again.", 400)
    evaluator = joining.evaluator_take_over(evaluator=evaluator)
    _remember(request, evaluator)
    return _next_page(study, evaluator)


def _browser_tag(browser: str) -> str:
    """The browser that holds an evaluator, as a take-over ticket names it: the ticket is
    signed, not encrypted, and the browser's own token is what its session presents."""
    return salted_hmac(TAKEOVER_SALT + ".browser", browser).hexdigest()[:16]


def _consent_context(study: Study, evaluator: Evaluator, tasks: dict[str, int] | None = None) -> dict:
    n_tasks = recruitment.planned_tasks(study=study, evaluator=evaluator, tasks=tasks)
    return {
        "study": study,
        "consent": recruitment.consent_of(study),
        "n_tasks": n_tasks,
        "estimate": recruitment.time_estimate(study=study, n_tasks=n_tasks),
        "practice": recruitment.practice_of(study),
        "from_panel": bool(evaluator.external_id),
        "panel": recruitment.panel_name(recruitment.recruitment_of(study)),
        "ranking": selectors.study_ranking(study=study),
    }


@evaluator_view(methods=("GET", "HEAD", "POST"))
@ratelimit(group="studies.consent", key="ip", rate=_rate("FUSION_RATE_CONSENT"), method="POST", block=True)
def consent(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """What the study is, what it takes and pays, what happens to the data; agree or not.
    Agreeing takes a slot (rate-limited per address, as joining is). Not agreeing sends the
    participant to the panel's "declined" address with its code (or shows the code, when
    the protocol gives no address); one who comes back and agrees after all may start."""
    if request.method == "POST" and evaluator.consented_at is None:
        if request.POST.get("agree") == "yes":
            try:
                joining.evaluator_consent(evaluator=evaluator, address=_address_key(request))
            except joining.StudyUnavailable as exc:
                if exc.reason == "address":
                    return _unavailable(request, study, str(exc), 429)
                return _unavailable(request, study, str(exc), 403, outcome=exc.reason)
            return redirect("studies:instructions", slug=study.slug)
        joining.evaluator_decline(evaluator=evaluator)
    if evaluator.declined_at is not None:
        rec = recruitment.recruitment_of(study)
        return render(
            request,
            "studies/declined.html",
            {
                "study": study,
                "link": recruitment.return_link(study, "declined"),
                "panel": recruitment.panel_name(rec),
            },
        )
    if evaluator.consented_at is not None:
        return redirect("studies:instructions", slug=study.slug)
    return render(request, "studies/consent.html", _consent_context(study, evaluator))


def _address_key(request: HttpRequest) -> str:
    """The client's address as the places-per-address cap counts it (an IPv6 client by its /64:
    ``client_network``): a keyed hash (HMAC with the site's secret key), so that the database
    never holds a participant's address."""
    return salted_hmac("fusion.consent-address", client_network(request)).hexdigest()[:32]


def _read_key(study: Study) -> str:
    """The session key that says this browser pressed "Start" on the study's instructions."""
    return f"instructions-read-{study.pk}"


def _practice_key(study: Study) -> str:
    """The session key of the feedback on this browser's practice answer in the study."""
    return f"practice-feedback-{study.pk}"


@evaluator_view(methods=("GET", "HEAD", "POST"), consent_required=True)
def instructions(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """How the tasks work. "Start" (a POST) lets the evaluator into the tasks, or into the
    practice item first when the protocol has one: the tasks cannot be reached before."""
    spec = recruitment.practice_of(study)
    if request.method == "POST":
        if spec is not None and spec.count is not None and evaluator.started_at is None:
            request.session[_read_key(study)] = True  # the practice item opens only after this page
            return redirect("studies:practice", slug=study.slug)
        joining.evaluator_start(evaluator=evaluator)
        return redirect("studies:task", slug=study.slug)
    tasks = sqlreads.entry_tasks(evaluator_id=evaluator.pk)  # by kind: also the number of tasks
    context = _consent_context(study, evaluator, tasks)
    practice = context["practice"]
    example = practice.rank_example if practice else None
    shown: list[int] = []
    if example:
        # The example lists pictures from the best match to the worst. An evaluator who
        # compares two images at a time (two variants, or the pairs design) sees it as a
        # comparison: the best beside the worst.
        n = len(example.images)
        shown = [0, n - 1] if context["ranking"].is_pairwise else list(range(n))
    context.update(
        {
            "has_count": "count" in tasks,
            "has_rank": "rank" in tasks,
            "start_practice": bool(practice and practice.count),
            "example": example,
            "example_images": [
                reverse("studies:practice_image", args=[study.slug, f"{PRACTICE_EXAMPLE}{k}"]) for k in shown
            ],
        }
    )
    return render(request, "studies/instructions.html", context)


@evaluator_view(methods=("GET", "HEAD", "POST"), consent_required=True)
def practice(request: HttpRequest, study: Study, evaluator: Evaluator) -> HttpResponse:
    """One counting item with a known answer, and feedback on the answer given. Nothing is
    stored: it is practice."""
    spec = recruitment.practice_of(study)
    if spec is None or spec.count is None:
        return redirect("studies:instructions", slug=study.slug)
    if evaluator.started_at is None and not request.session.get(_read_key(study)):
        return redirect("studies:instructions", slug=study.slug)  # the instructions come first
    form = PracticeAnswerForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        # An answer, right or wrong, is the practice done: the tasks open. The feedback is
        # shown by a GET (post, redirect, get): the back button from the first task or a
        # reload shows it again instead of asking the browser to send the form once more.
        joining.evaluator_start(evaluator=evaluator)
        given = form.cleaned_data["answer"]
        truth = spec.count.count
        request.session[_practice_key(study)] = {
            "given": given, "right": given == truth, "cant_tell": given is None, "truth": truth}
        return redirect("studies:practice", slug=study.slug)
    feedback = request.session.get(_practice_key(study)) if not form.is_bound else None
    proto = study.parsed_protocol  # not None: the practice spec came from it
    objects = proto.count_task.objects if proto is not None and proto.count_task is not None else ()
    obj = next((o for o in objects or () if o.name == spec.count.object), None)
    size = study_image_size(study)
    return render(
        request,
        "studies/practice.html",
        {
            "study": study,
            "form": form,
            "feedback": feedback,
            "plural": obj.plural if obj else spec.count.object,
            "image_url": reverse("studies:practice_image", args=[study.slug, PRACTICE_COUNT]),
            "display": selectors.image_display(width=size, height=size, box=COUNT_BOX),
        },
    )


@evaluator_view()
def practice_image(request: HttpRequest, study: Study, evaluator: Evaluator, name: str) -> HttpResponse:
    """A practice picture, drawn from the protocol (it shows no model's work)."""
    data = practice_picture(study=study, name=name)
    if data is None:
        raise Http404("No such picture.")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
