"""``cxpulse worker --processes N``: each child its own web port and static-membership id."""

from __future__ import annotations

from streams.processes import child_environments
from streams.rebalance import group_instance_id
from streams.settings import Settings


def test_each_process_gets_its_own_port_and_instance_id() -> None:
    envs = child_environments(Settings(web_port=7000, instance_id="auto"), 3)
    assert [env["CXPULSE_WEB_PORT"] for env in envs] == ["7000", "7001", "7002"]
    ids = {group_instance_id("auto", int(env["CXPULSE_WEB_PORT"])) for env in envs}
    assert len(ids) == 3


def test_an_explicit_instance_id_is_suffixed_per_process() -> None:
    envs = child_environments(Settings(web_port=7000, instance_id="worker-a"), 2)
    assert [env["CXPULSE_INSTANCE_ID"] for env in envs] == ["worker-a-0", "worker-a-1"]


def test_dynamic_membership_stays_dynamic() -> None:
    envs = child_environments(Settings(web_port=7000, instance_id=""), 2)
    assert all("CXPULSE_INSTANCE_ID" not in env or env["CXPULSE_INSTANCE_ID"] == "" for env in envs)
