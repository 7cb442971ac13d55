"""The case desk's HTTP API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Every ``/api`` route needs a token (``Authorization: Bearer yj_...``, from ``yujing cases users
add``); the web inbox's login cookie is ignored here, so a page on another site cannot make a
logged-in browser call the API (no CSRF exposure: the API has no cookie authentication). Roles: viewer reads; handler works the cases
assigned to them and takes unassigned ones; supervisor also assigns, closes, reopens, silences,
routes and retries failed pushes. Compliance findings (``/api/findings``): every role reads,
handlers and supervisors acknowledge or resolve them with a note. Errors are JSON ``{"detail": "<one clear line>"}``: 401 without
a valid token, 403 when the role may not, 404 for unknown ids, 409 when the case's status does not
allow the action.
"""


from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.sessions import SessionMiddleware

from alerts.cases import OPEN_STATUSES, CaseActionDenied, CaseActionInvalid
from cases import findings_desk, store
from cases.config import CaseSettings
from cases.service import utcnow

if TYPE_CHECKING:
    from streams.config import KafkaSettings

bearer = HTTPBearer(auto_error=False, description="API token from `yujing cases users add`.")


class NoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


class AssignIn(BaseModel):
    assignee: str
    note: str | None = None


class ResolveIn(BaseModel):
    disposition: Literal["confirmed_risk", "false_alarm", "rectified", "referred_to_enforcement"]
    note: str = Field(min_length=1, max_length=4000, description="What was found and done.")


class ReopenIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="Why the case is reopened.")


class SilenceIn(BaseModel):
    target_kind: Literal["merchant", "chain"]
    target_id: str = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=1000)
    ends_at: AwareDatetime = Field(description="Required, with a UTC offset: every silence expires (at most 90 days).")
    starts_at: AwareDatetime | None = None


class RoutingRuleIn(BaseModel):
    assignee: str
    district: str | None = Field(default=None, description="Town; empty matches any.")
    industry: str | None = Field(default=None, description="Industry; empty matches any.")


class FindingNoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="What was seen or done.")


# -- who is asking: one transaction per request, the caller's token or login ---------------


def connection(request: Request) -> Iterator[Connection]:
    # The engine create_app keeps in app.state: these dependencies serve every route function.
    with request.app.state.engine.begin() as conn:
        yield conn


Conn = Annotated[Connection, Depends(connection)]


def current_user(
    conn: Conn, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> store.User:
    # The token only, never the session cookie: a browser sends the cookie with any request a
    # foreign page makes, a bearer token only when our own code adds it.
    user = store.user_by_token(conn, credentials.credentials) if credentials is not None else None
    if user is None:
        raise HTTPException(401, "a valid token is required", headers={"WWW-Authenticate": "Bearer"})
    return user


Me = Annotated[store.User, Depends(current_user)]


def supervisor(user: Me) -> store.User:
    if user.role != "supervisor":
        raise HTTPException(403, f"role {user.role} may not do this; supervisors only")
    return user


Boss = Annotated[store.User, Depends(supervisor)]


# -- the app --------------------------------------------------------------------------------


def create_app(
    settings: "KafkaSettings", cases: CaseSettings, engine: Engine, *, with_web: bool = True,
    registry: CollectorRegistry = REGISTRY,
) -> FastAPI:
    """The desk's app: service routes, the session cookie, JSON errors, the API by resource and,
    ``with_web``, the web inbox's pages (:mod:`cases.web`)."""
    app = FastAPI(
        title="yujing 预警 case desk",
        version="1",
        description="Cases built from the disposal queue (prepaid.warnings): read, work and resolve them.",
    )
    app.state.settings = settings
    app.state.cases = cases
    app.state.engine = engine
    add_service_routes(app, engine, registry)
    add_session(app, cases)
    add_error_handlers(app)
    add_user_routes(app)
    add_case_routes(app, feedback_topic=settings.topics.feedback)
    add_silence_routes(app)
    add_routing_routes(app)
    add_delivery_routes(app)
    add_finding_routes(app)
    if with_web:
        from cases.web import web_router

        app.include_router(web_router(settings, engine))
    return app


def add_service_routes(app: FastAPI, engine: Engine, registry: CollectorRegistry) -> None:
    """``/metrics`` and ``/healthz``, without a token."""
    # Prometheus scrapes /metrics (no token: counts only, no case or merchant data in it).
    app.mount("/metrics", make_asgi_app(registry))

    @app.get("/healthz", tags=["service"])
    def healthz() -> JSONResponse:
        """Ready when PostgreSQL answers (no token needed; container health check, k8s readiness)."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse({"status": "database unavailable", "detail": str(exc).splitlines()[0]},
                                status_code=503)
        return JSONResponse({"status": "ok"})


def add_session(app: FastAPI, cases: CaseSettings) -> None:
    """The signed session cookie of the web inbox's login (HttpOnly; the API ignores it)."""
    app.add_middleware(SessionMiddleware, secret_key=cases.cookie_secret(), session_cookie="yujing_session",
                       # lax: a link from a pushed work order still arrives logged in; forms carry CSRF tokens
                       same_site="lax", https_only=cases.cookies_secure(), max_age=12 * 3600)


def add_error_handlers(app: FastAPI) -> None:
    """The desk's refusals as JSON ``{"detail": ...}``: 404 unknown id, 403 role, 409 status."""

    @app.exception_handler(store.NotFound)
    async def _not_found(_: Request, exc: store.NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(CaseActionDenied)
    async def _denied(_: Request, exc: CaseActionDenied) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(CaseActionInvalid)
    async def _invalid(_: Request, exc: CaseActionInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)


# -- the API, by resource -------------------------------------------------------------------


def add_user_routes(app: FastAPI) -> None:
    """Who the token or login belongs to."""

    @app.get("/api/me", tags=["users"])
    def me(user: Me) -> dict[str, str]:
        return {"username": user.username, "display_name": user.display_name, "role": user.role}


def add_case_routes(app: FastAPI, *, feedback_topic: str) -> None:
    """The queue, a case, the actions on it (resolving one queues feedback to ``feedback_topic``),
    a merchant's warnings, the overdue cases."""

    @app.get("/api/cases", tags=["cases"])
    def cases_list(
        conn: Conn, user: Me,
        status: Annotated[list[str] | None, Query(description="Filter; default: the open ones.")] = None,
        assignee: str | None = None,
        mine: bool = Query(False, description="Only cases assigned to me."),
        unassigned: bool = False,
        level: str | None = None,
        all: bool = Query(False, description="Every status, resolved and closed too."),
    ) -> list[dict[str, Any]]:
        """The queue: most severe first, then the nearest response deadline."""
        statuses = None if all else (status or sorted(OPEN_STATUSES))
        return store.list_cases(
            conn, status=statuses, assignee=user.username if mine else assignee,
            unassigned=unassigned, level=level,
        )

    @app.get("/api/cases/{case_id}", tags=["cases"])
    def case_detail(case_id: str, conn: Conn, user: Me) -> dict[str, Any]:
        """A case with its merchants, warning history (with indicator explanations), audit trail and pushes."""
        return store.get_case(conn, case_id)

    def _act(conn: Connection, case_id: str, user: store.User, action: str, **kw: Any) -> dict[str, Any]:
        status = store.act(conn, case_id, user, action, now=utcnow(),
                           feedback_topic=feedback_topic, **kw)
        return {"case_id": case_id, "status": status}

    @app.post("/api/cases/{case_id}/take", tags=["cases"])
    def take(case_id: str, conn: Conn, user: Me) -> dict[str, Any]:
        """Take an unassigned case (or your own) and start working on it."""
        return _act(conn, case_id, user, "take")

    @app.post("/api/cases/{case_id}/start", tags=["cases"])
    def start(case_id: str, conn: Conn, user: Me) -> dict[str, Any]:
        return _act(conn, case_id, user, "start")

    @app.post("/api/cases/{case_id}/assign", tags=["cases"])
    def assign(case_id: str, body: AssignIn, conn: Conn, user: Me) -> dict[str, Any]:
        """Supervisors: give the case to a handler."""
        return _act(conn, case_id, user, "assign", assignee=body.assignee, note=body.note)

    @app.post("/api/cases/{case_id}/notes", tags=["cases"])
    def add_note(case_id: str, body: NoteIn, conn: Conn, user: Me) -> dict[str, Any]:
        return _act(conn, case_id, user, "note", note=body.note)

    @app.post("/api/cases/{case_id}/resolve", tags=["cases"])
    def resolve(case_id: str, body: ResolveIn, conn: Conn, user: Me) -> dict[str, Any]:
        """Resolve with a disposition (confirmed_risk, false_alarm, rectified,
        referred_to_enforcement); it is published as feedback to the scoring side."""
        return _act(conn, case_id, user, "resolve", disposition=body.disposition, note=body.note)

    @app.post("/api/cases/{case_id}/close", tags=["cases"])
    def close(case_id: str, conn: Conn, user: Me) -> dict[str, Any]:
        """Supervisors: confirm a resolution and close the case."""
        return _act(conn, case_id, user, "close")

    @app.post("/api/cases/{case_id}/reopen", tags=["cases"])
    def reopen(case_id: str, body: ReopenIn, conn: Conn, user: Me) -> dict[str, Any]:
        return _act(conn, case_id, user, "reopen", note=body.note)

    @app.get("/api/merchants/{merchant_id}/warnings", tags=["cases"])
    def merchant_warnings(merchant_id: str, conn: Conn, user: Me) -> list[dict[str, Any]]:
        return store.merchant_history(conn, merchant_id)

    @app.get("/api/overdue", tags=["cases"])
    def overdue(conn: Conn, user: Me) -> list[dict[str, Any]]:
        """Open cases past their response deadline."""
        return store.overdue_cases(conn, now=utcnow())


def add_silence_routes(app: FastAPI) -> None:
    """Silences: every role lists them; supervisors add and lift them."""

    @app.get("/api/silences", tags=["silences"])
    def silences_list(conn: Conn, user: Me, include_ended: bool = False) -> list[dict[str, Any]]:
        return store.list_silences(conn, now=utcnow(), include_ended=include_ended)

    @app.post("/api/silences", tags=["silences"], status_code=201)
    def silence(body: SilenceIn, conn: Conn, user: Me) -> dict[str, Any]:
        """Supervisors: mute a merchant or a chain until ``ends_at``, with a reason."""
        silence_id = store.add_silence(conn, user, body.target_kind, body.target_id, reason=body.reason,
                                       ends_at=body.ends_at, starts_at=body.starts_at, now=utcnow())
        return {"silence_id": silence_id}

    @app.delete("/api/silences/{silence_id}", tags=["silences"])
    def unsilence(silence_id: int, conn: Conn, user: Me) -> dict[str, Any]:
        store.cancel_silence(conn, user, silence_id, now=utcnow())
        return {"silence_id": silence_id, "cancelled": True}


def add_routing_routes(app: FastAPI) -> None:
    """Routing rules: every role lists them; supervisors add and delete them."""

    @app.get("/api/routing-rules", tags=["routing"])
    def rules(conn: Conn, user: Me) -> list[dict[str, Any]]:
        return store.list_routing_rules(conn)

    @app.post("/api/routing-rules", tags=["routing"], status_code=201)
    def add_rule(body: RoutingRuleIn, conn: Conn, user: Me) -> dict[str, Any]:
        """Supervisors: new cases in this town and industry go to this handler (most specific rule wins)."""
        rule_id = store.add_routing_rule(conn, user, body.assignee, district=body.district,
                                         industry=body.industry, now=utcnow())
        return {"rule_id": rule_id}

    @app.delete("/api/routing-rules/{rule_id}", tags=["routing"])
    def delete_rule(rule_id: int, conn: Conn, user: Me) -> dict[str, Any]:
        store.delete_routing_rule(conn, user, rule_id)
        return {"rule_id": rule_id, "deleted": True}


def add_delivery_routes(app: FastAPI) -> None:
    """Pushes and feedback records (supervisors only)."""

    @app.get("/api/deliveries", tags=["pushes"])
    def deliveries(
        conn: Conn, user: Boss, status: Literal["pending", "delivered", "failed"] | None = None,
        kind: Literal["webhook", "feedback"] | None = None,
    ) -> list[dict[str, Any]]:
        """Supervisors: pushes to outside systems and feedback records, failed ones included."""
        return store.list_deliveries(conn, status=status, kind=kind)

    @app.post("/api/deliveries/{message_id}/retry", tags=["pushes"])
    def retry(message_id: int, conn: Conn, user: Boss) -> dict[str, Any]:
        store.retry_delivery(conn, user, message_id, now=utcnow())
        return {"message_id": message_id, "status": "pending"}


def add_finding_routes(app: FastAPI) -> None:
    """Compliance findings: every role reads; handlers and supervisors acknowledge or resolve."""

    @app.get("/api/findings", tags=["compliance"])
    def findings_list(
        conn: Conn, user: Me,
        code: Literal[tuple(findings_desk.CODES)] | None = None,  # type: ignore[valid-type]
        district: str | None = Query(None, description="Town."),
        industry: str | None = None,
        merchant_id: str | None = None,
        status: Annotated[list[Literal[tuple(findings_desk.STATUSES)]] | None,  # type: ignore[valid-type]
                          Query(description="Filter; default: open and acknowledged.")] = None,
        all: bool = Query(False, description="Every status, resolved and cleared too."),
        order: Literal["newest", "longest"] = Query("newest", description="newest or longest-running episode first"),
    ) -> list[dict[str, Any]]:
        """Compliance findings (cap breaches, custody reports missing, custody shortfalls):
        kept apart from the risk level; one per merchant and code."""
        statuses = None if all else (status or list(findings_desk.ATTENTION))
        return findings_desk.list_findings(conn, statuses=statuses, code=code, district=district,
                                           industry=industry, merchant_id=merchant_id, order=order)

    @app.get("/api/findings/{merchant_id}/{code}", tags=["compliance"])
    def finding_detail(merchant_id: str, code: str, conn: Conn, user: Me) -> dict[str, Any]:
        """One finding with its notes (who acknowledged or resolved it, when, why)."""
        return findings_desk.get_finding(conn, merchant_id, code)

    @app.post("/api/findings/{merchant_id}/{code}/{action}", tags=["compliance"])
    def finding_action(
        merchant_id: str, code: str, action: Literal["acknowledge", "resolve"], body: FindingNoteIn,
        conn: Conn, user: Me,
    ) -> dict[str, Any]:
        """Handlers and supervisors: acknowledge (seen, being looked into) or resolve a finding."""
        handling = "acknowledged" if action == "acknowledge" else "resolved"
        status = findings_desk.handle(conn, merchant_id, code, user, handling, body.note, now=utcnow())
        return {"merchant_id": merchant_id, "code": code, "status": status}
