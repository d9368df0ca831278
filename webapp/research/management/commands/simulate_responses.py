"""python manage.py simulate_responses STUDY --evaluators N [--seed S] [--quality v=q,...]"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.commands import study_by_slug
from webapp.research import services


def parse_quality(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CommandError(f"--quality: expected variant=number, got {part!r}") from None
        if not sep:
            raise CommandError(f"--quality: expected variant=number, got {part!r}")
    return out


class Command(BaseCommand):
    help = ("Fill an open study with simulated evaluators (evalstudy's rater simulator) who join and "
            "answer through the same services as people; for dry runs of the study and its analysis.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="the study's slug")
        parser.add_argument("--evaluators", type=int, required=True, help="how many simulated evaluators")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--quality", default="",
                            help="variant=quality in [0, 1], comma-separated (default 0.7 each)")
        parser.add_argument("--count-noise", type=float, default=0.1, help="mean miscount rate of an evaluator")
        parser.add_argument("--rank-noise", type=float, default=0.3, help="sd of a judgment's noise")
        parser.add_argument("--skip-rate", type=float, default=0.1, help="share of rankings skipped")
        parser.add_argument("--tie-margin", type=float, default=0.0,
                            help="images judged this close are tied (a study that allows ties; default 0: none)")

    def handle(self, *args: object, study: str, evaluators: int, seed: int, quality: str, count_noise: float,
               rank_noise: float, skip_rate: float, tie_margin: float, **options: object) -> None:
        found = study_by_slug(study)
        try:
            summary = services.study_simulate_responses(
                study=found, n_evaluators=evaluators, seed=seed, variant_quality=parse_quality(quality) or None,
                count_noise=count_noise, rank_noise=rank_noise, skip_rate=skip_rate, tie_margin=tie_margin,
            )
        except services.ResearchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{summary.evaluators} simulated evaluators answered {summary.count_answers} count tasks and "
            f"{summary.rank_answers} rankings in {found.slug}."
        )
        if summary.stopped:
            # The study changed under the run (closed, paused): an operator's note, not a failure.
            self.stdout.write(f"Stopped after {summary.evaluators} of {evaluators}: {summary.stopped} "
                              f"(python manage.py study_status {found.slug} ... to change its status).")
        self.stdout.write(
            "They take no participant's place and are left out of results, figures and exports unless asked for "
            f"(export {found.slug} --include-simulated ...). Remove them before real data collection with:\n"
            f"    python manage.py remove_simulated {found.slug}")
