"""The Great Expectations Data Docs site, served by the Airflow api-server behind its login.

Mounted by `plugins/tickerlake_links.py` at DATA_DOCS_PREFIX; the "Data Docs" link of a
validation task opens `runs/<run id>`, which redirects to that run's first page. Every page
needs an Airflow user (bearer token or the UI's session cookie), exactly like Airflow's own API.
"""

from pathlib import Path

DATA_DOCS_PREFIX = "/tickerlake/data-docs"


def run_pages(site_dir: Path, run_id: str) -> list[Path]:
    """The validation result pages of `run_id` in the site, row suite first (as build_data_docs writes them)."""
    run_dir = run_id.replace("/", "_")
    found = (site_dir / "validations").glob("*/*/" + _glob_escape(run_dir)) if site_dir.is_dir() else []
    suites = sorted(found, key=lambda folder: (folder.parent.name != "rows", folder.as_posix()))
    return [page for folder in suites for page in sorted(folder.glob("**/*.html"))]


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def resolve_page(site_dir: Path, path: str) -> Path | None:
    """The file `path` names inside the site, or None (outside the site, or missing)."""
    root = site_dir.resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def create_app(site_dir: Path):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, RedirectResponse

    app = FastAPI(title="Tickerlake Data Docs", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(get_user)])

    @app.get("/runs/{run_id:path}")
    def run_page(run_id: str, request: Request):
        pages = run_pages(site_dir, run_id)
        if not pages:
            raise HTTPException(404, f"no Data Docs page for run {run_id!r}")
        relative = pages[0].relative_to(site_dir).as_posix()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/{relative}", status_code=307)

    @app.get("/{path:path}")
    def page(path: str):
        found = resolve_page(site_dir, path or "index.html")
        if found is None:
            raise HTTPException(404, "not in the Data Docs site")
        return FileResponse(found)

    return app


class LazyApp:
    """An ASGI app built on its first request: every Airflow process loads plugins, and only the
    api-server ever serves a page, so the others do not pay for importing FastAPI and the
    api-server's security module."""

    def __init__(self, site_dir: Path) -> None:
        self.site_dir = site_dir
        self._app = None

    async def __call__(self, scope, receive, send) -> None:
        if self._app is None:
            self._app = create_app(self.site_dir)
        await self._app(scope, receive, send)
