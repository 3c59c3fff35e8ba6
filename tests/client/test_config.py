from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import grpc
import pytest

from switchboard.client import Switchboard, TLSConfig
from switchboard.client._config import SERVICES, channel_options, resolve_tls, service_config
from switchboard.v1 import campaigns_pb2, connectors_pb2, contacts_pb2, leads_pb2

from .fakes import Backend


def test_the_retry_policy_covers_every_service_of_the_contract() -> None:
    contract = {
        service.full_name
        for module in (contacts_pb2, leads_pb2, campaigns_pb2, connectors_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    }

    assert set(SERVICES) == contract


def test_service_config_retries_unavailable_with_backoff() -> None:
    (method_config,) = service_config(retries=3)["methodConfig"]

    assert method_config == {
        "name": [{"service": service} for service in SERVICES],
        "waitForReady": False,
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }


def test_no_retries_means_no_retry_policy() -> None:
    (method_config,) = service_config(retries=0)["methodConfig"]

    assert "retryPolicy" not in method_config


@pytest.mark.parametrize("retries", [pytest.param(-1, id="negative"), pytest.param(5, id="six")])
def test_retries_out_of_grpc_bounds_are_refused(retries: int) -> None:
    with pytest.raises(ValueError, match="retries"):
        service_config(retries)


def test_channel_options_enable_retries_and_keep_extra_options() -> None:
    options = dict(channel_options(2, [("grpc.primary_user_agent", "tests")]))

    assert options["grpc.enable_retries"] == 1
    assert json.loads(options["grpc.service_config"]) == service_config(2)
    assert options["grpc.primary_user_agent"] == "tests"


async def test_certificates_need_tls() -> None:
    with pytest.raises(ValueError, match="tls=False"):
        Switchboard("localhost:1", root_certificates=b"pem")


async def test_tls_opens_a_secure_channel() -> None:
    async with Switchboard("localhost:1", tls=True) as sb:
        assert isinstance(sb.channel, grpc.aio.Channel)


def test_tls_true_means_the_default_tls_config() -> None:
    assert resolve_tls(True) == TLSConfig()
    assert resolve_tls(False) is None
    given = TLSConfig(root_certificates=b"pem")
    assert resolve_tls(given) is given


def test_the_old_certificate_arguments_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="TLSConfig"):
        tls = resolve_tls(True, b"root", b"chain", b"key")

    assert tls == TLSConfig(b"root", b"chain", b"key")


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="go together"):
        TLSConfig(client_cert_chain=b"chain")


def test_tls_config_reads_pem_files(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"root")
    (tmp_path / "me.pem").write_bytes(b"chain")
    (tmp_path / "me.key").write_bytes(b"key")

    tls = TLSConfig.from_files(
        tmp_path / "ca.pem",
        client_cert_chain=tmp_path / "me.pem",
        client_private_key=str(tmp_path / "me.key"),
    )

    assert tls == TLSConfig(b"root", b"chain", b"key")
    with pytest.raises(FrozenInstanceError):
        tls.root_certificates = None  # type: ignore[misc]


async def test_aclose_closes_and_close_is_a_deprecated_alias(address: str) -> None:
    sb = Switchboard(address)
    await sb.connectors.list()
    await sb.aclose()
    with pytest.raises(RuntimeError, match="client is closed"):
        await sb.connectors.list()

    old = Switchboard(address)
    with pytest.warns(DeprecationWarning, match="aclose"):
        await old.close()


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({}, id="neither"), pytest.param({"target": "x:1"}, id="both")],
)
async def test_target_or_channel_is_required(kwargs: dict[str, str]) -> None:
    async with grpc.aio.insecure_channel("localhost:1") as channel:
        with pytest.raises(TypeError, match="target"):
            Switchboard(**kwargs, channel=channel if kwargs else None)


async def test_a_channel_passed_in_stays_open(address: str, backend: Backend) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        async with Switchboard(channel=channel) as sb:
            await sb.contacts.get(id="c_1")
        async with Switchboard(channel=channel) as sb:
            await sb.contacts.get(id="c_2")

    assert [r.id for r in backend.requests("GetContact")] == ["c_1", "c_2"]
