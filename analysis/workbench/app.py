"""The workbench's Starlette application: server-rendered pages (Jinja2) and a small JSON API.

Pages: definitions (list, create, edit), plot view, sessions, jobs, results. The API under
``/api/`` does every change; the pages' script sends the CSRF token with it. Every request
first passes :class:`analysis.workbench.security.SecurityMiddleware`. Errors are JSON
``{"error": message, "field": name}`` with 400 (bad request), 404, 409 (a conflicting edit),
413 (body too large) or 422 (an invalid field: nothing was written).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from analysis.core import sessions
from analysis.core.config import AnalysisConfig, load_config
from analysis.core.errors import ConfigError, DijetscanError
from analysis.workbench import definitions, views
from analysis.workbench.jobs import JobRequest, JobRunner
from analysis.workbench.security import BodyTooLarge, SecurityMiddleware, check_part, contained, new_token

HERE = Path(__file__).resolve().parent
FILE_ROUTE = "/results/file"


class Settings(BaseModel):
    """What the app serves: the config (its directory is the configs root) and the roots."""

    config: Path
    sessions: Path
    results: Path
    host: str = "127.0.0.1"
    port: int = 8765


class Workbench:
    """The app's state: settings, CSRF token, job runner."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.settings = settings
        self.token = token
        self.jobs = JobRunner(settings.results)

    def config(self) -> AnalysisConfig:
        return load_config(self.settings.config)

    def definitions_path(self, kind: str) -> Path:
        """The config's definitions file of ``kind``: a plain file in the configs root."""
        if kind not in definitions.KINDS:
            raise HTTPException(404, f"unknown definitions kind {kind!r}")
        root = self.settings.config.parent
        path = self.config().resolve(getattr(self.config().toys, kind))
        if path.parent.resolve() != root.resolve():
            raise ConfigError(f"toys.{kind} ({path}) lies outside the configs directory {root}; the workbench edits only files there")
        return contained(root, [path.name], f"toys.{kind}")


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, definitions.FieldError):
        return JSONResponse({"error": str(exc), "field": exc.field}, 422)
    if isinstance(exc, definitions.Conflict):
        return JSONResponse({"error": str(exc)}, 409)
    if isinstance(exc, BodyTooLarge):
        return JSONResponse({"error": "request body too large"}, 413)
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        return JSONResponse({"error": f"{field}: {err['msg']}", "field": field}, 400)
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, exc.status_code)
    return JSONResponse({"error": " ".join(str(exc).split())}, 400)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ConfigError("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError("the request body must be a JSON object")
    return data


def _version(body: dict[str, Any]) -> str:
    version = body.get("version")
    if not isinstance(version, str):
        raise ConfigError("version: the file version the change was made from is required")
    return version


def _values(body: dict[str, Any]) -> dict[str, str]:
    values = body.get("values")
    if not isinstance(values, dict):
        raise ConfigError("values: expected an object of form fields")
    return values


def create_app(settings: Settings, token: str | None = None) -> SecurityMiddleware:
    """The workbench application for ``settings`` (wrapped in the security middleware)."""
    bench = Workbench(settings, token or new_token())
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(csrf=bench.token, settings=settings, kinds=definitions.KINDS)
        return templates.TemplateResponse(request, name, context, status_code=status)

    # -- definitions ------------------------------------------------------------------------------
    async def definitions_page(request: Request) -> Response:
        kind = request.path_params["kind"]
        data = definitions.read(kind, bench.definitions_path(kind))
        return page(request, "definitions.html", kind=kind, file=data)

    async def entry_page(request: Request) -> Response:
        kind = request.path_params["kind"]
        data = definitions.read(kind, bench.definitions_path(kind))
        ident = request.path_params.get("ident")
        if ident is None:
            variant = request.query_params.get("variant", "exponential") if kind == "backgrounds" else None
            if variant not in (None, "exponential", "dijet"):
                raise ConfigError(f"variant {variant!r}: exponential or dijet")
            values = {"kind": variant} if variant else {}
        else:
            entry = next((e for e in data.entries if e.get("id") == ident), None)
            if entry is None:
                raise HTTPException(404, f"no {kind} entry with id {ident}")
            values = definitions.flatten(entry)
            variant = entry.get("kind", "exponential") if kind == "backgrounds" else None
        fields = definitions.form_fields(kind, variant)
        return page(request, "entry.html", kind=kind, ident=ident, version=data.version, fields=fields, values=values)

    async def definitions_api(request: Request) -> Response:
        kind = request.path_params["kind"]
        data = definitions.read(kind, bench.definitions_path(kind))
        return JSONResponse({"version": data.version, "entries": data.entries})

    async def create_entry(request: Request) -> Response:
        kind, body = request.path_params["kind"], await _body(request)
        data, ident = definitions.create(kind, bench.definitions_path(kind), _version(body), _values(body))
        return JSONResponse({"version": data.version, "id": ident}, 201)

    async def change_entry(request: Request) -> Response:
        kind, ident, body = request.path_params["kind"], request.path_params["ident"], await _body(request)
        path = bench.definitions_path(kind)
        if request.method == "DELETE":
            data = definitions.delete(kind, path, _version(body), ident)
            return JSONResponse({"version": data.version})
        data, new_id = definitions.update(kind, path, _version(body), ident, _values(body))
        return JSONResponse({"version": data.version, "id": new_id})

    async def duplicate_entry(request: Request) -> Response:
        kind, ident, body = request.path_params["kind"], request.path_params["ident"], await _body(request)
        data, new_id = definitions.duplicate(kind, bench.definitions_path(kind), _version(body), ident)
        return JSONResponse({"version": data.version, "id": new_id}, 201)

    # -- plot view --------------------------------------------------------------------------------
    async def plot_page(request: Request) -> Response:
        config = bench.config()
        files = {kind: definitions.read(kind, bench.definitions_path(kind)).entries for kind in definitions.KINDS}
        return page(request, "plot.html", files=files, toys=config.toys, seed=config.seed, max_toys=views.MAX_TOYS)

    def plot_api(request: Request) -> Response:  # sync: runs in the thread pool (matplotlib)
        query = dict(request.query_params)
        plot = views.PlotRequest.model_validate({k: query[k] for k in query})
        return JSONResponse(views.plot_view(bench.config(), plot))

    # -- sessions ---------------------------------------------------------------------------------
    async def sessions_page(request: Request) -> Response:
        return page(request, "sessions.html", found=sessions.list_sessions(settings.sessions))

    async def sessions_api(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"sessions": sessions.list_sessions(settings.sessions)})
        body = await _body(request)
        name = sessions.check_name(str(body.get("name", "")))
        sessions.save(settings.sessions, name, settings.config, force=bool(body.get("force", False)))
        return JSONResponse({"saved": name}, 201)

    async def session_api(request: Request) -> Response:
        name = sessions.check_name(request.path_params["name"])
        if request.method == "DELETE":
            sessions.delete(settings.sessions, name)
            return JSONResponse({"deleted": name})
        return JSONResponse(views.session_changes(settings.sessions, name, bench.config(), settings.config))

    async def load_session(request: Request) -> Response:
        name = sessions.check_name(request.path_params["name"])
        changes = views.session_changes(settings.sessions, name, bench.config(), settings.config)
        written = sessions.load(settings.sessions, name, settings.config.parent)
        return JSONResponse({**changes, "written": [p.name for p in written]})

    # -- jobs -------------------------------------------------------------------------------------
    async def jobs_page(request: Request) -> Response:
        toys = bench.config().toys
        return page(request, "jobs.html", toys=toys, dataset=bench.config().dataset)

    async def jobs_api(request: Request) -> Response:
        if request.method == "GET":
            job = bench.jobs.current
            return JSONResponse({"job": job.status(settings.results).model_dump() if job else None})
        job_request = JobRequest.model_validate(await _body(request))
        out = contained(settings.results, [check_part(job_request.name, "results name")], "results name")
        job = bench.jobs.start(job_request, settings.config, out)
        return JSONResponse({"job": job.status(settings.results).model_dump()}, 202)

    def cancel_job(request: Request) -> Response:  # sync: waits for the process to stop
        job = bench.jobs.cancel()
        return JSONResponse({"job": job.status(settings.results).model_dump() if job else None})

    # -- results ----------------------------------------------------------------------------------
    async def results_page(request: Request) -> Response:
        return page(request, "results.html", runs=views.list_runs(settings.results))

    async def results_api(request: Request) -> Response:
        return JSONResponse({"runs": [r.model_dump() for r in views.list_runs(settings.results)]})

    async def run_page(request: Request) -> Response:
        view = views.run_view(settings.results, request.path_params["path"], FILE_ROUTE)
        return page(request, "run.html", run=view)

    async def result_file(request: Request) -> Response:
        path, media = views.result_file(settings.results, request.path_params["path"])
        return FileResponse(path, media_type=media)

    async def index(request: Request) -> Response:
        return RedirectResponse("/plot", 303)

    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException | DijetscanError | ValidationError | BodyTooLarge) and not request.url.path.startswith(("/api/", FILE_ROUTE)):
            response = _error(exc)
            message = json.loads(response.body)["error"]
            return page(request, "error.html", status=response.status_code, message=message, code=response.status_code)
        return _error(exc)

    routes = [
        Route("/", index),
        Route("/definitions/{kind}", definitions_page),
        Route("/definitions/{kind}/new", entry_page),
        Route("/definitions/{kind}/{ident:int}", entry_page),
        Route("/api/definitions/{kind}", definitions_api, methods=["GET"]),
        Route("/api/definitions/{kind}", create_entry, methods=["POST"]),
        Route("/api/definitions/{kind}/{ident:int}", change_entry, methods=["PUT", "DELETE"]),
        Route("/api/definitions/{kind}/{ident:int}/duplicate", duplicate_entry, methods=["POST"]),
        Route("/plot", plot_page),
        Route("/api/plot", plot_api),
        Route("/sessions", sessions_page),
        Route("/api/sessions", sessions_api, methods=["GET", "POST"]),
        Route("/api/sessions/{name}", session_api, methods=["GET", "DELETE"]),
        Route("/api/sessions/{name}/load", load_session, methods=["POST"]),
        Route("/jobs", jobs_page),
        Route("/api/jobs", jobs_api, methods=["GET", "POST"]),
        Route("/api/jobs/cancel", cancel_job, methods=["POST"]),
        Route("/results", results_page),
        Route("/api/results", results_api),
        Route("/results/view/{path:path}", run_page),
        Route(FILE_ROUTE + "/{path:path}", result_file),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers = {exc: handle for exc in (HTTPException, DijetscanError, ValidationError, BodyTooLarge)}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        bench.jobs.shutdown()  # a job never outlives its server

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.workbench = bench
    return SecurityMiddleware(app, host=settings.host, port=settings.port, token=bench.token)
