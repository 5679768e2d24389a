"""roleport.testing.RoleportServer without starting it: the `roleport serve` command line its options make, and
the clients it hands out (their endpoint, region and botocore settings)."""

from __future__ import annotations

from pathlib import Path

from botocore.config import Config

from roleport.testing import RoleportServer


def flags_of(server: RoleportServer) -> list[str]:
    command = server.command()
    assert command[1:4] == ["-m", "roleport", "serve"]
    return command[4:]


def test_options_become_flags_with_dashes_bare_for_true_and_repeated_for_lists(tmp_path: Path) -> None:
    server = RoleportServer(
        data_dir=tmp_path,
        clock="controlled",
        state_transition_seconds=0,
        no_read_cache=True,
        access_log=False,
        database_url=None,
        quota=["roles-per-account=5", "instance-profiles-per-account=2"],
    )
    assert flags_of(server) == [
        *["--port", "0", "--data-dir", str(tmp_path)],
        *["--root-access-key", "test", "--root-secret-key", "test", "--region", "us-east-1"],
        *["--clock", "controlled", "--state-transition-seconds", "0", "--no-read-cache"],
        *["--quota", "roles-per-account=5", "--quota", "instance-profiles-per-account=2"],
    ]


def test_without_keys_the_server_makes_its_own_pair(tmp_path: Path) -> None:
    flags = flags_of(RoleportServer(data_dir=tmp_path, access_key=None, secret_key=None))
    assert "--root-access-key" not in flags and "--root-secret-key" not in flags


def test_the_log_goes_to_the_data_dir_unless_told_otherwise(tmp_path: Path) -> None:
    assert RoleportServer(data_dir=tmp_path).log_file == tmp_path / "server.log"
    assert RoleportServer(data_dir=tmp_path, log_file=tmp_path / "x.log").log_file == tmp_path / "x.log"


def test_clients_point_at_the_server_in_its_region(tmp_path: Path) -> None:
    server = RoleportServer(data_dir=tmp_path, region="eu-west-1")
    for client in (
        server.client("iam"),
        server.client("sts", access_key="ASIAOTHER", secret_key="s", session_token="t"),
    ):
        assert (client.meta.endpoint_url, client.meta.region_name) == ("http://127.0.0.1:0", "eu-west-1")


def test_the_client_config_is_merged_under_each_client_s_own(tmp_path: Path) -> None:
    server = RoleportServer(data_dir=tmp_path, client_config=Config(connect_timeout=4, read_timeout=7))
    plain = server.client("iam").meta.config
    assert (plain.connect_timeout, plain.read_timeout) == (4, 7)
    tuned = server.client("iam", config=Config(read_timeout=3, max_pool_connections=20)).meta.config
    assert (tuned.connect_timeout, tuned.read_timeout, tuned.max_pool_connections) == (4, 3, 20)
