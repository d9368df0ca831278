"""What a study shows: the grid derived from a protocol, not stored, so that the grammar
("a bus", "an apple", "two sheep", "five people") lives in one place: `count_prompts`,
`preference_captions` and `study_items`, every item with the stable id the responses use.
Who sees which item, in which order and screen positions, is `evalstudy.design`.

A drawn sample of captions is ordered by `stable_key` (sha256), not by a library's random
stream, so that a protocol gives the same captions on any machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .protocol import (
    NUMBER_WORDS,
    ColourSpec,
    NotJSONError,
    ObjectSpec,
    Protocol,
    ProtocolError,
    guess_article,
    json_document,
)


def stable_key(*parts: object) -> str:
    """A sort key that depends only on its parts: sha256, not any library's RNG stream."""
    return hashlib.sha256(":".join(map(str, parts)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CountPrompt:
    object: str
    count: int
    colour: str | None
    text: str       # the prompt given to the model, e.g. "three red circles"
    question: str   # the question shown to evaluators, e.g. "How many circles can you see?"


@dataclass(frozen=True)
class StudyItem:
    """One unit shown to evaluators: a count image, a gold image or a caption to rank."""

    task: str              # "count" or "rank"
    item_id: str
    prompt: str
    variant: str | None     # None for gold items and for rank items (all variants)
    object: str | None
    true_count: int | None
    colour: str | None
    seed: int | None
    question: str | None
    is_gold: bool = False


def _render(template: str, obj: ObjectSpec, count: int, colour: ColourSpec | None) -> str:
    if count == 1:
        quantity = colour.article if colour is not None else obj.article
    else:
        quantity = NUMBER_WORDS[count]
    text = template.format(quantity=quantity, colour=colour.name if colour else "",
                           noun=obj.singular if count == 1 else obj.plural,
                           singular=obj.singular, plural=obj.plural, count=count)
    return " ".join(text.split())  # an absent colour leaves a double space


def count_prompts(protocol: Protocol) -> list[CountPrompt]:
    """The object-count grid: objects x counts (x colours), in protocol order."""
    task = protocol.count_task
    if task is None:
        return []
    colours: tuple[ColourSpec | None, ...] = task.colours or (None,)
    out = []
    for obj in task.objects:
        for count in task.counts:
            for colour in colours:
                out.append(CountPrompt(
                    object=obj.name, count=count, colour=colour.name if colour else None,
                    text=_render(task.prompt_template, obj, count, colour),
                    question=_render(task.question_template, obj, count, colour)))
    return out


def read_coco_captions(path: str | Path, *, label: str | None = None) -> list[tuple[int, str]]:
    """(annotation id, caption) pairs from an MS-COCO captions file, sorted by id.

    Errors name the file as ``label`` (e.g. the protocol field that gave the path, so that
    a server's paths stay out of the message), or as its path when no label is given.
    """
    path = Path(path)
    name = str(path) if label is None else label
    try:
        doc = json_document(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProtocolError(f"{name}: cannot read captions file ({exc.strerror})") from exc
    except (NotJSONError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{name}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise ProtocolError(f"{name}: not an MS-COCO captions file (no 'annotations' list)")
    out = []
    for i, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not isinstance(a.get("caption"), str) or "id" not in a:
            raise ProtocolError(f"{name}: annotations[{i}] needs 'id' and 'caption'")
        out.append((a["id"], " ".join(a["caption"].split())))
    return sorted(out, key=lambda t: str(t[0]))


def protocol_file(value: str, *, field: str, base_dir: str | Path | None = None,
                  root: str | Path | None = None) -> Path:
    """The file a path in a protocol names: relative paths are read from ``base_dir``.

    With ``root`` (a server reading protocols that others upload), the file must lie inside
    that folder once every symbolic link is followed: an absolute path, ``..`` past the
    folder or a link out of it is a ProtocolError naming ``field``, and no message shows a
    path, so the server neither reads nor describes a file outside the folder.
    """
    path = Path(value)
    if root is None:
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path
    if path.is_absolute():
        raise ProtocolError(f"{field}: give a path relative to the protocol's own folder, inside the protocol files "
                            "folder (the server's FUSION_PROTOCOL_FILES_DIR), not an absolute one")
    try:
        inside = Path(root).resolve()
        full = ((Path(base_dir) if base_dir is not None else inside) / path).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a loop of links
        raise ProtocolError(f"{field}: not a usable file path") from exc
    if not full.is_relative_to(inside):
        raise ProtocolError(f"{field}: the file must be inside the protocol files folder "
                            "(no '..' past it, no link out of it)")
    return full


def preference_captions(protocol: Protocol, base_dir: str | Path | None = None,
                        root: str | Path | None = None) -> list[str]:
    """The captions to rank. A drawn sample is ordered by sha256(seed:annotation id),
    so it is the same on every machine and for every numpy version. A captions file is
    found with ``protocol_file`` (confined to ``root`` when one is given)."""
    task = protocol.preference_task
    if task is None:
        return []
    src = task.captions
    if src.path is None:
        if src.n is None:
            return list(src.inline)
        pool = list(enumerate(src.inline))
    else:
        field = "preference_task.captions.path"
        path = protocol_file(src.path, field=field, base_dir=base_dir, root=root)
        # Under a root the path is relative to the protocol (absolute ones are refused above): as
        # the protocol wrote it, it names nothing of the server.
        pool = read_coco_captions(path, label=None if root is None else f"{field} {src.path!r}")
    # One caption per distinct text: COCO has near-duplicates across annotations.
    seen: set[str] = set()
    unique = []
    for _ann_id, text in sorted(pool, key=lambda t: stable_key(src.seed, t[0])):
        if text.lower() not in seen:
            seen.add(text.lower())
            unique.append(text)
    if src.n is not None and len(unique) < src.n:  # a file source always names n
        raise ProtocolError(f"preference_task.captions: asked for {src.n} captions, "
                            f"the source has {len(unique)} distinct ones")
    return unique[: src.n]


def image_seeds(protocol: Protocol, n_images: int) -> list[int]:
    """Seeds of the images of one prompt; the same for every prompt and variant."""
    return [protocol.sampling.seed + k for k in range(n_images)]


def study_items(protocol: Protocol, base_dir: str | Path | None = None,
                root: str | Path | None = None) -> list[StudyItem]:
    """Every item of the study with a stable id: count images per variant, prompt and
    seed; gold images; captions (x seeds) to rank. Ids are what the responses use.
    ``base_dir`` and ``root``: as in ``preference_captions``."""
    items: list[StudyItem] = []
    if protocol.count_task is not None:
        seeds = image_seeds(protocol, protocol.count_task.images_per_prompt)
        for p in count_prompts(protocol):
            colour = f":{p.colour}" if p.colour else ""
            for variant in protocol.variants:
                for seed in seeds:
                    items.append(StudyItem(
                        task="count", item_id=f"count:{variant}:{p.object}:{p.count}{colour}:{seed}",
                        prompt=p.text, variant=variant, object=p.object, true_count=p.count,
                        colour=p.colour, seed=seed, question=p.question))
        objects = {o.name: o for o in protocol.count_task.objects}
        for g in protocol.quality_control.gold:
            obj = objects[g.object]
            gold_colour = next((c for c in protocol.count_task.colours if c.name == g.colour),
                               ColourSpec(g.colour, guess_article(g.colour)) if g.colour else None)
            text = (_render(protocol.count_task.prompt_template, obj, g.count, gold_colour)
                    if g.count > 0 else f"no {obj.plural}")
            items.append(StudyItem(
                task="count", item_id=f"gold:{g.id}", prompt=text, variant=None,
                object=g.object, true_count=g.count, colour=g.colour, seed=None,
                question=_render(protocol.count_task.question_template, obj, max(g.count, 1),
                                 gold_colour),
                is_gold=True))
    if protocol.preference_task is not None:
        seeds = image_seeds(protocol, protocol.preference_task.images_per_caption)
        for k, caption in enumerate(preference_captions(protocol, base_dir, root)):
            for seed in seeds:
                items.append(StudyItem(
                    task="rank", item_id=f"rank:{k}:{seed}", prompt=caption, variant=None,
                    object=None, true_count=None, colour=None, seed=seed, question=None))
    return items
