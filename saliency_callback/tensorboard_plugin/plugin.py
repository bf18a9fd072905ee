"""The Saliency tab's backend: a TensorBoard plugin serving a run's verdict, curves and pictures.

Routes (under `/data/plugin/saliency`), all read-only:

- `/index.js`, `/style.css`, ...: the files of `static/` (the frontend, an ES module);
- `/runs`: the runs holding this callback's summaries, and the other runs;
- `/run?run=R`: the verdict, the curves and the logged steps of one run (`summary.run_summary`);
- `/thumb?run=R&step=S&probe=I&tile=overlay|saliency|image`: a grid's thumbnail (PNG);
- `/image?run=R&tag=probes|background&step=S&sample=I`: a full panel as written (PNG);
- `/cell?run=R&step=S&probe=I`: the per-probe values of one cell (JSON).

Which runs hold our summaries comes from TensorBoard's data provider (it works with the Rust data
server on or off); their pictures come from the event files under `--logdir`, read in full by
`events.RunReader` (not TensorBoard's 10-sample reservoir).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tensorboard import context as tb_context
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from saliency_callback.tensorboard_plugin import summary
from saliency_callback.tensorboard_plugin.events import PREFIX, ImageRef, RunData, RunReader
from saliency_callback.tensorboard_plugin.thumbs import Pictures

PLUGIN_NAME = "saliency"
TAB_NAME = "Saliency"
STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_JSON = "application/json"
_TILES = {"image": 0, "saliency": 1, "overlay": 2}  # the tiles of a probe's panel
_IMAGE_TAGS = {"probes": summary.PROBES, "background": summary.BACKGROUND}
_CACHE_S = 24 * 3600  # picture URLs carry the record's version: they never change
_KNOWN_S = 5.0  # how long the picture routes trust the list of runs
MAX_READERS = 256
"""Most runs whose readers are kept (each holds a few numbers per logged step)."""

logger = logging.getLogger(__name__)


class BadRequestError(ValueError):
    """A request's parameter is missing or wrong; the message says which."""


class NotFoundError(KeyError):
    """The run, step or sample does not exist."""


def _int(args: Any, name: str) -> int:
    raw = args.get(name)
    if raw is None:
        raise BadRequestError(f"missing parameter `{name}`")
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError(f"expected `{name}` to be an integer, received {raw!r}") from None


def _ours(listing: dict[str, Any]) -> set[str]:
    return {run for run, tags in listing.items() if any(t.startswith(PREFIX) for t in tags)}


class SaliencyPlugin(base_plugin.TBPlugin):
    """The Saliency tab (see the module docstring)."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        self._logdir = context.logdir or ""
        self._readers: dict[str, RunReader] = {}
        self._known: dict[str, tuple[float, list[str]]] = {}  # experiment -> (time, runs)
        self._lock = threading.Lock()
        self.pictures = Pictures()

    # -- TBPlugin ----------------------------------------------------------------------------

    def get_plugin_apps(self) -> dict[str, Any]:
        apps: dict[str, Any] = {
            "/runs": self._route(self._runs_json),
            "/run": self._route(self._run_json),
            "/thumb": self._route(self._thumb_png),
            "/image": self._route(self._image_png),
            "/cell": self._route(self._cell_json),
        }
        for path in sorted(STATIC.iterdir()):
            if path.suffix in _TYPES:
                apps["/" + path.name] = self._static(path)
        return apps

    def is_active(self) -> bool:
        try:
            return bool(self.runs(tb_context.RequestContext(), "")[0])
        except Exception:
            logger.warning("Saliency: could not list the runs", exc_info=True)
            return False

    def data_plugin_names(self) -> tuple[str, ...]:
        return ()  # active only for runs with `saliency/...` tags (see `is_active`)

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name=TAB_NAME)

    # -- data --------------------------------------------------------------------------------

    def runs(self, ctx: Any, experiment_id: str) -> tuple[list[str], list[str]]:
        """(runs holding `saliency/...` summaries, the other runs), sorted."""
        if self._provider is None:
            return [], []
        ours: set[str] = set()
        for lister, plugin in (
            (self._provider.list_blob_sequences, "images"),
            (self._provider.list_scalars, "scalars"),
            (self._provider.list_tensors, "text"),
        ):
            ours |= _ours(lister(ctx, experiment_id=experiment_id, plugin_name=plugin) or {})
        every = {r.run_name for r in self._provider.list_runs(ctx, experiment_id=experiment_id)}
        return sorted(ours), sorted(every - ours)

    def reader(self, run: str, known: list[str]) -> RunReader:
        """The reader of `run`, which must be one of `known` (no other path is ever read)."""
        if run not in known:
            raise NotFoundError(f"no run {run!r} holds saliency summaries")
        if not self._logdir or "://" in self._logdir:
            raise BadRequestError(
                "the Saliency tab reads the event files under a local --logdir; TensorBoard was "
                f"started with logdir={self._logdir!r}"
            )
        with self._lock:
            reader = self._readers.get(run)
            if reader is None:
                if len(self._readers) >= MAX_READERS:
                    self._readers.pop(next(iter(self._readers)))
                reader = RunReader(os.path.join(self._logdir, run))
                self._readers[run] = reader
            return reader

    def _run_reader(self, request: Any) -> RunReader:
        run = request.args.get("run")
        if not run:
            raise BadRequestError("missing parameter `run`")
        env = request.environ
        eid = plugin_util.experiment_id(env)
        with self._lock:
            when, known = self._known.get(eid, (0.0, []))
        if run not in known or time.monotonic() - when > _KNOWN_S:
            known, _ = self.runs(plugin_util.context(env), eid)
            with self._lock:
                self._known[eid] = (time.monotonic(), known)
        return self.reader(run, known)

    # -- routes ------------------------------------------------------------------------------

    def _static(self, path: Path) -> Any:
        content_type = _TYPES[path.suffix]
        return self._route(lambda request: (path.read_bytes(), content_type, 0))

    def _route(self, make: Callable[[Any], tuple[Any, str, int]]) -> Any:
        """A WSGI app answering `make(request)` = (body, content type, cache seconds); bad
        requests and missing data become JSON errors, never tracebacks."""

        @wrappers.Request.application
        def app(request: Any) -> Any:
            try:
                body, content_type, expires = make(request)
                return http_util.Respond(request, body, content_type, expires=expires)
            except BadRequestError as err:
                body, code = {"error": str(err)}, 400
            except (NotFoundError, IndexError) as err:
                body, code = {"error": err.args[0] if err.args else str(err)}, 404
            except Exception as err:  # never a traceback in the page: log it, say it
                logger.exception("Saliency: %s failed", request.path)
                body, code = {"error": f"{type(err).__name__}: {err}"}, 500
            return http_util.Respond(request, body, "application/json", code=code)

        return app

    def _runs_json(self, request: Any) -> tuple[Any, str, int]:
        env = request.environ
        ours, others = self.runs(plugin_util.context(env), plugin_util.experiment_id(env))
        return {"runs": ours, "other_runs": others}, _JSON, 0

    def _run_json(self, request: Any) -> tuple[Any, str, int]:
        reader = self._run_reader(request)  # checks `run` first
        run = request.args["run"]
        body = reader.read(lambda data: summary.run_summary(run, data))
        return body, _JSON, 0

    def _ref(self, reader: RunReader, tag: str, step: int) -> ImageRef:
        ref = reader.data.images.get(tag, {}).get(step)
        if ref is None:
            reader.refresh()
            ref = reader.data.images.get(tag, {}).get(step)
        if ref is None:
            raise NotFoundError(f"{tag} has no step {step} in this run")
        return ref

    def _thumb_png(self, request: Any) -> tuple[Any, str, int]:
        reader = self._run_reader(request)
        step, probe = _int(request.args, "step"), _int(request.args, "probe")
        tile = request.args.get("tile", "saliency")
        if tile not in _TILES:
            raise BadRequestError(f"expected `tile` in {list(_TILES)}, received {tile!r}")
        ref = self._ref(reader, summary.PROBES, step)
        png = self.pictures.thumbnail(ref, summary.PROBES, probe, _TILES[tile])
        return png, "image/png", _CACHE_S

    def _image_png(self, request: Any) -> tuple[Any, str, int]:
        reader = self._run_reader(request)
        name = request.args.get("tag", "probes")
        if name not in _IMAGE_TAGS:
            raise BadRequestError(f"expected `tag` in {sorted(_IMAGE_TAGS)}, received {name!r}")
        step, sample = _int(request.args, "step"), _int(request.args, "sample")
        ref = self._ref(reader, _IMAGE_TAGS[name], step)
        return self.pictures.png(ref, _IMAGE_TAGS[name], sample), "image/png", _CACHE_S

    def _cell_json(self, request: Any) -> tuple[Any, str, int]:
        reader = self._run_reader(request)
        step, probe = _int(request.args, "step"), _int(request.args, "probe")
        return reader.read(lambda data: _cell(data, step, probe)), _JSON, 0


def _cell(data: RunData, step: int, probe: int) -> dict[str, Any]:
    """The JSON of `/cell`: what one probe's panel at one step shows besides the pictures."""
    probes = data.images.get(summary.PROBES, {}).get(step)
    if probes is None:
        raise NotFoundError(f"{summary.PROBES} has no step {step} in this run")
    background = data.images.get(summary.BACKGROUND, {}).get(step)
    return {
        "step": step,
        "probe": probe,
        "panel": probe < probes.samples,
        "background": background is not None and probe < background.samples,
        "values": summary.per_probe(data, probe, step),
        "descriptions": {
            "probes": data.descriptions.get(summary.PROBES, ""),
            "background": data.descriptions.get(summary.BACKGROUND, ""),
        },
    }
