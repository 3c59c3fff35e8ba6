"""The Connect protocol port: the real curl binary and connectrpc's client against a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.scopes import ALL_SCOPES
from switchboard.server.config.settings import defaults
from switchboard.v1 import campaigns_pb2, contacts_pb2
from tests.rawcalls import all_rpcs

ADMIN = generate_key()
READER = generate_key()
CALLERS = {
    "admin": {"scopes": sorted(ALL_SCOPES), "key_sha256": [hash_key(ADMIN)]},
    "reader": {"scopes": ["leads:read"], "key_sha256": [hash_key(READER)]},
}
StartApp = Callable[..., Awaitable[App]]


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


def _curl() -> str:
    found = shutil.which("curl")
    if found is None:
        pytest.skip("curl is not on PATH")
    return found


async def curl(app: App, path: str, body: str, key: str | None = ADMIN) -> Answer:
    """POST `body` as JSON with the real curl binary; the HTTP status and the JSON answer."""
    assert app.connect is not None
    argv = [_curl(), "-sS", "-w", "\n%{http_code}", "-H", "content-type: application/json"]
    if key is not None:
        argv += ["-H", f"authorization: Bearer {key}"]
    argv += ["-d", body, f"http://127.0.0.1:{app.connect.port}{path}"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    text, _, status = out.decode().rpartition("\n")
    return Answer(int(status), json.loads(text) if text else {})


@pytest.fixture
async def app(start_app: StartApp) -> App:
    # One trigger with A/B variants besides the defaults, for GetVariantResults.
    ab = {
        "steps": [{"connector": "crm", "action": "contacts.upsert"}],
        "variants": {"a": 1, "b": 1},
        "conversion": "purchase",
    }
    return await start_app(
        auth={"enabled": True, "callers": CALLERS},
        connect={"listen": "127.0.0.1:0"},
        triggers={**defaults()["triggers"], "welcome.ab": ab},
    )


async def test_the_port_is_off_unless_configured(start_app: StartApp) -> None:
    assert (await start_app()).connect is None


async def test_curl_reaches_every_unary_rpc_with_json(app: App) -> None:
    c, lead, camp, conn = (
        "/switchboard.v1.ContactSync/",
        "/switchboard.v1.LeadScoring/",
        "/switchboard.v1.CampaignTriggers/",
        "/switchboard.v1.Connectors/",
    )
    ada = '{"contact": {"email": "ada@example.com"}}'
    run: dict[str, str] = {}
    calls: list[tuple[str, Callable[[], str], Callable[[dict[str, Any]], bool]]] = [
        (
            c + "UpsertContact",
            lambda: (
                '{"contact": {"email": "ada@example.com", "first_name": "Ada", '
                '"consent": {"opt_in": true, "source": "test"}}, "idempotency_key": "k1"}'
            ),
            lambda b: b["created"] is True and b["contact"]["firstName"] == "Ada",
        ),
        (
            c + "GetContact",
            lambda: '{"email": "ada@example.com"}',
            lambda b: b["contact"]["email"] == "ada@example.com",
        ),
        (c + "ListContacts", lambda: "{}", lambda b: len(b["contacts"]) == 1),
        (
            lead + "RecordActivity",
            lambda: (
                '{"contact": {"email": "ada@example.com"}, '
                '"activity": {"type": "ACTIVITY_TYPE_EMAIL_CLICK"}}'
            ),
            lambda b: b["activityId"] != "" and "lead" in b,
        ),
        (lead + "ScoreLead", lambda: ada, lambda b: b["lead"]["grade"].startswith("LEAD_GRADE_")),
        (
            lead + "UpdateLeadStatus",
            lambda: '{"contact": {"email": "ada@example.com"}, "status": "LEAD_STATUS_MQL"}',
            lambda b: b["lead"]["status"] == "LEAD_STATUS_MQL",
        ),
        (lead + "GetLead", lambda: ada, lambda b: b["lead"]["status"] == "LEAD_STATUS_MQL"),
        (
            camp + "TriggerCampaign",
            lambda: '{"event": "newsletter.signup", "contact": {"email": "ada@example.com"}}',
            lambda b: run.setdefault("id", b["run"]["id"]).startswith("r_"),
        ),
        (
            camp + "GetRun",
            lambda: json.dumps({"id": run["id"]}),
            lambda b: b["run"]["id"] == run["id"],
        ),
        (camp + "ListRuns", lambda: "{}", lambda b: b["runs"][0]["id"] == run["id"]),
        (
            camp + "ListTriggers",
            lambda: "{}",
            lambda b: "newsletter.signup" in {t["event"] for t in b["triggers"]},
        ),
        (
            camp + "GetVariantResults",
            lambda: '{"event": "welcome.ab"}',
            lambda b: [r["variant"] for r in b["results"]] == ["a", "b"],
        ),
        (conn + "ListConnectors", lambda: "{}", lambda b: len(b["connectors"]) > 1),
        (
            conn + "InvokeConnector",
            lambda: (
                '{"connector": "analytics", "action": "events.track", '
                '"payload": {"event": "connect.test"}, "skipConsentCheck": true}'
            ),
            lambda b: b["result"] == {"event": "connect.test", "count": 1},
        ),
        # No dead letters: empty lists are left out of the JSON mapping.
        (conn + "ListDeadLetters", lambda: "{}", lambda b: "deadLetters" not in b),
        (conn + "RedriveDeadLetters", lambda: '{"all": true}', lambda b: "redriven" not in b),
        (
            c + "DeleteContact",
            lambda: '{"email": "ada@example.com"}',
            lambda b: b["id"].startswith("c_") and "deletedAt" in b,
        ),
    ]
    unary = {r.path for r in all_rpcs() if not (r.client_streaming or r.server_streaming)}
    assert {path for path, _, _ in calls} == unary  # a new unary RPC needs a case here

    for path, body, check in calls:
        answer = await curl(app, path, body())
        assert answer.status == 200, (path, answer)
        assert check(answer.body), (path, answer.body)

    gone = await curl(app, c + "GetContact", '{"email": "ada@example.com"}')
    assert (gone.status, gone.body["code"]) == (404, "not_found")


async def test_without_credentials_is_unauthenticated(app: App) -> None:
    answer = await curl(app, "/switchboard.v1.ContactSync/GetContact", "{}", key=None)
    assert answer.status == 401
    assert answer.body["code"] == "unauthenticated"
    assert "authorization: Bearer" in answer.body["message"]


async def test_an_unknown_key_is_unauthenticated(app: App) -> None:
    answer = await curl(app, "/switchboard.v1.ContactSync/GetContact", "{}", key=generate_key())
    assert (answer.status, answer.body["code"]) == (401, "unauthenticated")


async def test_a_missing_scope_is_permission_denied_naming_it(app: App) -> None:
    answer = await curl(
        app, "/switchboard.v1.ContactSync/GetContact", '{"email": "a@example.com"}', key=READER
    )
    assert answer.status == 403
    assert answer.body["code"] == "permission_denied"
    assert "'contacts:read'" in answer.body["message"]


async def test_unauthenticated_garbage_is_refused_before_decoding(app: App) -> None:
    answer = await curl(app, "/switchboard.v1.ContactSync/GetContact", "{not json", key=None)
    assert answer.body["code"] == "unauthenticated"


async def test_invalid_argument_carries_the_field_violations(app: App) -> None:
    answer = await curl(
        app,
        "/switchboard.v1.ContactSync/UpsertContact",
        '{"contact": {"email": "not-an-email", "phone": "12"}}',
    )
    assert answer.status == 400
    assert answer.body["code"] == "invalid_argument"
    assert "contact.email" in answer.body["message"]
    [detail] = answer.body["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    raw = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
    bad = error_details_pb2.BadRequest.FromString(raw)
    assert {v.field for v in bad.field_violations} == {"contact.email", "contact.phone"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param('{"emial": "a@example.com"}', 'no field named "emial"', id="unknown-field"),
        pytest.param('{"email": 5}', "email", id="wrong-type"),
        pytest.param("{not json", "Failed to load JSON", id="not-json"),
    ],
)
async def test_a_body_that_is_not_the_message_is_invalid_argument(
    app: App, body: str, needle: str
) -> None:
    answer = await curl(app, "/switchboard.v1.ContactSync/GetContact", body)
    assert answer.status == 400
    assert answer.body["code"] == "invalid_argument"
    assert "switchboard.v1.GetContactRequest" in answer.body["message"]
    assert needle in answer.body["message"]


async def test_the_rate_limit_is_shared_with_the_grpc_port(start_app: StartApp) -> None:
    app = await start_app(
        auth={"enabled": True, "callers": CALLERS},
        connect={"listen": "127.0.0.1:0"},
        limits={"rate_per_s": 0.001, "rate_burst": 1},
    )
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=ADMIN, timeout=5.0) as sb:
        with pytest.raises(SwitchboardError) as caught:
            await sb.contacts.get(email="a@example.com")  # spends the one token
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
    answer = await curl(app, "/switchboard.v1.ContactSync/GetContact", '{"email": "a@ex.com"}')
    assert (answer.status, answer.body["code"]) == (429, "resource_exhausted")


class _ProtobufCodec:
    """connectrpc codec for google.protobuf messages (its defaults use protobuf-py)."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        return message_class.FromString(bytes(data))


def _method(
    service: str, name: str, req: type, res: type, kind: StreamType
) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=name,
        service_name=service,
        input=req,
        output=res,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=kind,
    )


UPSERT = _method(
    "switchboard.v1.ContactSync",
    "UpsertContact",
    contacts_pb2.UpsertContactRequest,
    contacts_pb2.UpsertContactResponse,
    StreamType.UNARY,
)
GET = _method(
    "switchboard.v1.ContactSync",
    "GetContact",
    contacts_pb2.GetContactRequest,
    contacts_pb2.GetContactResponse,
    StreamType.UNARY,
)
TRIGGER = _method(
    "switchboard.v1.CampaignTriggers",
    "TriggerCampaign",
    campaigns_pb2.TriggerCampaignRequest,
    campaigns_pb2.TriggerCampaignResponse,
    StreamType.UNARY,
)
WATCH = _method(
    "switchboard.v1.CampaignTriggers",
    "WatchRun",
    campaigns_pb2.WatchRunRequest,
    campaigns_pb2.WatchRunResponse,
    StreamType.SERVER_STREAM,
)


async def test_a_connect_client_calls_unary_and_streaming_rpcs(app: App) -> None:
    assert app.connect is not None
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with ConnectClient(
        f"http://127.0.0.1:{app.connect.port}", codec=_ProtobufCodec(), timeout_ms=10_000
    ) as client:
        contact = contacts_pb2.Contact(email="grace@example.com", first_name="Grace")
        contact.consent.opt_in = True
        contact.consent.source = "test"
        contact.lists.append("newsletter")
        upserted = await client.execute_unary(
            request=contacts_pb2.UpsertContactRequest(contact=contact),
            method=UPSERT,
            headers=headers,
        )
        got = await client.execute_unary(
            request=contacts_pb2.GetContactRequest(email="grace@example.com"),
            method=GET,
            headers=headers,
        )
        assert got.contact.id == upserted.contact.id
        assert got.contact.first_name == "Grace"

        triggered = await client.execute_unary(
            request=campaigns_pb2.TriggerCampaignRequest(
                event="newsletter.signup", contact=contacts_pb2.Contact(email="grace@example.com")
            ),
            method=TRIGGER,
            headers=headers,
        )
        states = [
            update.run.status
            async for update in client.execute_server_stream(
                request=campaigns_pb2.WatchRunRequest(id=triggered.run.id),
                method=WATCH,
                headers=headers,
            )
        ]
        assert states[-1] == campaigns_pb2.RUN_STATUS_SUCCEEDED

        with pytest.raises(ConnectError) as caught:
            await client.execute_unary(
                request=contacts_pb2.GetContactRequest(email="nobody@example.com"),
                method=GET,
                headers=headers,
            )
        assert caught.value.code == Code.NOT_FOUND
        with pytest.raises(ConnectError) as denied:
            await client.execute_unary(
                request=contacts_pb2.GetContactRequest(email="grace@example.com"),
                method=GET,
                headers={"authorization": f"Bearer {READER}"},
            )
        assert denied.value.code == Code.PERMISSION_DENIED
