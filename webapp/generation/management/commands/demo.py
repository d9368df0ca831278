"""Run the demo study end to end: database, users, checkpoints, a real Celery worker, the server.

    python manage.py demo              # ... then serve on 127.0.0.1:8000 until Ctrl-C
    python manage.py demo --no-serve   # ... then print a JSON summary and exit

It serves as production does: DEBUG off (unless DEBUG=1 is set on purpose, which it
warns about), so evaluators see plain error pages, never a traceback or the URL map; the
secret key is the one made for this install under var/ (see webapp/settings.py).

See webapp/generation/demo.py for what a second run reuses.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evalstudy.protocol import ProtocolError, load_protocol
from webapp.generation import celery_workers, demo, follow, selectors, services
from webapp.studies.lifecycle import StudySetupError, study_open
from webapp.studies.models import Study


def _addrport(value: str) -> str:
    """``8600`` -> ``127.0.0.1:8600``; ``HOST:PORT`` as given (the printed links need a host)."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return f"127.0.0.1:{value}"
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a port or HOST:PORT (e.g. 8600 or 127.0.0.1:8600)")
    return value


class Command(BaseCommand):
    help = "Set up and run the demo study: generate its images on a Celery worker, open it, serve it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-serve", action="store_true", help="Stop after opening the study; print a JSON summary."
        )
        parser.add_argument("--fresh", action="store_true", help="Make a new demo study even if one can be reused.")
        parser.add_argument("--protocol", type=Path, default=demo.PROTOCOL)
        parser.add_argument("--checkpoints", type=Path, default=demo.CHECKPOINTS,
                            help="Folder with one checkpoint folder per variant (default fixtures/checkpoints).")
        parser.add_argument("--steps", type=int, default=None, help="Override the protocol's sampling steps.")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker processes (prefork pool).")
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", type=_addrport, metavar="[HOST:]PORT",
            help="Where the server listens (default 127.0.0.1:8000; a port alone means 127.0.0.1:PORT). "
                 "Invite links use it unless FUSION_BASE_URL is set.")

    def handle(self, *args: object, **opts: Any) -> None:  # Any: argparse's values, one type per option
        started = time.monotonic()
        try:  # first: a protocol that does not parse changes nothing
            protocol = load_protocol(opts["protocol"])
        except ProtocolError as exc:
            raise CommandError(str(exc)) from exc
        # SIGTERM ends the command like Ctrl-C does, through the `finally` that stops the
        # worker (which runs in its own process group, out of reach of the terminal).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        missing = [v for v in protocol.variants if not (opts["checkpoints"] / v).exists()]
        if missing:
            raise CommandError(
                f"No demo checkpoint for {', '.join(missing)} under {opts['checkpoints']} "
                "(one folder per variant, each with model.safetensors)."
            )
        try:
            checkpoints = demo.demo_checkpoints_register(protocol=protocol, checkpoints_dir=opts["checkpoints"])
            prepared = demo.demo_study_prepare(
                protocol=protocol, base_dir=opts["protocol"].parent, checkpoints=checkpoints, fresh=opts["fresh"]
            )
        except (services.GenerationError, StudySetupError) as exc:
            raise CommandError(str(exc)) from exc
        study = prepared.study
        logins = demo.demo_users_ensure(study=study)
        self.stderr.write(f"{'Reusing' if prepared.reused else 'Created'} study {study.slug} ({study.status}).")

        worker = None
        log_path = Path(settings.VAR_DIR) / "demo-worker.log"
        if study.status == Study.Status.DRAFT or not opts["no_serve"]:
            # One thread per worker process: on a small machine torch's default (one
            # thread per core, in each process) oversubscribes the cores several times.
            env = {"FUSION_TORCH_THREADS": os.environ.get("FUSION_TORCH_THREADS", "1")}
            pool = "prefork" if opts["concurrency"] > 1 else "solo"
            worker = celery_workers.worker_spawn(log_path=log_path, env=env, pool=pool, concurrency=opts["concurrency"],
                                             name=f"demo-{os.getpid()}")
        try:
            if study.status == Study.Status.DRAFT:
                assert worker is not None  # spawned above for a draft study
                self._generate(study, opts["steps"], worker, log_path)
            study.refresh_from_db()
            images = selectors.study_image_counts(study=study)
            summary = {
                "study": study.slug,
                "images": images,
                "invite_url": demo.invite_url(study, base_url=os.environ.get("FUSION_BASE_URL") or f"http://{opts['addrport']}"),
                "logins": {role: {"username": v["username"], "password": v["password"]} for role, v in logins.items()},
                "reused": prepared.reused,
                "seconds": round(time.monotonic() - started, 1),
            }
            self._print_welcome(study, summary, opts["addrport"], opts["no_serve"])
            if opts["no_serve"]:
                self.stdout.write(json.dumps(summary))
                return
            if settings.DEBUG:
                self.stderr.write("DEBUG is on: error pages show tracebacks and settings. "
                                  "Do not show this server to participants; unset DEBUG for the demo.")
            if not os.environ.get("FUSION_BASE_URL"):
                # Invite links on the /run/ pages point where this server listens (--addrport).
                settings.FUSION_BASE_URL = f"http://{opts['addrport']}"
            # Django's server, with DEBUG off; --insecure only lets it serve the static files
            # (the CSS and scripts) that a proxy would serve in production.
            call_command("runserver", opts["addrport"], use_reloader=False, insecure_serving=True)
        finally:
            if worker is not None:
                celery_workers.worker_stop(worker)

    def _generate(self, study: Study, steps: int | None, worker: subprocess.Popen, log_path: Path) -> None:

        from tqdm import tqdm

        try:
            if not any(selectors.study_missing_work(study=study).values()):
                # An earlier run made every image but stopped before opening the study.
                study_open(study=study)
                return
            batch = services.batch_launch(study=study, steps=steps, open_when_complete=True)
        except (services.GenerationError, StudySetupError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Generating {follow.batch_size_text(batch)} "
                          f"(CFG {batch.cfg_scale}, {batch.steps} steps) on a Celery worker; log: {log_path}")

        def on_progress(progress: selectors.BatchProgress) -> None:
            if progress["done"] != bar.n:
                bar.set_postfix_str(" ".join(f"{v['name']} {v['done']}/{v['total']}" for v in progress["variants"]),
                                    refresh=False)
                bar.update(progress["done"] - bar.n)

        def worker_alive() -> None:
            if worker.poll() is not None:
                raise CommandError(f"The Celery worker exited ({worker.returncode}):\n"
                                   f"{celery_workers.log_tail(log_path)}")

        # The demo starts its own worker: a batch it does not take shows in worker_alive().
        with tqdm(total=batch.total_images, unit="img", file=sys.stderr, mininterval=1.0, dynamic_ncols=True) as bar:
            progress = follow.batch_follow(batch=batch, on_progress=on_progress, check=worker_alive, interval=0.5)
        if progress["status"] != "complete":
            raise CommandError(follow.batch_end_message(progress))
        if progress["note"]:
            raise CommandError(progress["note"])

    def _print_welcome(self, study: Study, summary: dict, addrport: str, no_serve: bool) -> None:
        out = self.stderr if no_serve else self.stdout
        admin, researcher = summary["logins"]["admin"], summary["logins"]["researcher"]
        lines = [
            "",
            f"The demo study {study.slug!r} is {study.status}: "
            + ", ".join(f"{n} images of {v}" for v, n in summary["images"].items()) + ".",
            f"  Evaluators join at:  {summary['invite_url']}",
            f"  Admin (staff) login: {admin['username']} / {admin['password']}"
            f"   -> http://{addrport}/admin/ and http://{addrport}/generation/",
            f"  Researcher login:    {researcher['username']} / {researcher['password']}"
            f"   -> http://{addrport}/research/login/",
            f"  Set up in {summary['seconds']} s.",
        ]
        if not no_serve:
            lines.append(f"Serving on http://{addrport}/ (Ctrl-C to stop).")
        out.write("\n".join(lines))
