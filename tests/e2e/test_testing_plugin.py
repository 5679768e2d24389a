"""roleport.testing, the pytest plugin roleport ships for users' own suites: its fixtures here, and a user's suite
that loads it the documented way, run by pytest in a subprocess."""

from __future__ import annotations

from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST


@pytest.fixture(scope="session")
def roleport_options() -> dict[str, Any]:
    return {"clock": "controlled", "propagation_delay": 5, "state_transition_seconds": 0}


def test_the_fixture_serves_real_clients_and_moves_the_clock(roleport: RoleportServer, roleport_session: Any) -> None:
    iam = roleport_session.client("iam", endpoint_url=roleport.endpoint_url)
    ec2 = roleport_session.client("ec2", endpoint_url=roleport.endpoint_url)
    iam.create_instance_profile(InstanceProfileName="plugin-profile")
    with pytest.raises(ec2.exceptions.ClientError):
        ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "plugin-profile"})
    before = roleport.now()
    assert (roleport.advance(5) - before).total_seconds() == 5
    ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "plugin-profile"})


def test_each_test_starts_empty_with_the_starting_delays(roleport: RoleportServer) -> None:
    iam = roleport.client("iam")
    assert iam.list_instance_profiles()["InstanceProfiles"] == []  # the previous test's profile is gone
    assert roleport.propagation()["delay_seconds"] == 5
    roleport.set_propagation(delay=0)  # the next test gets 5 again


def test_a_users_suite_loads_the_plugin_from_its_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        pytest_plugins = ["roleport.testing"]


        @pytest.fixture(scope="session")
        def roleport_options():
            return {"clock": "controlled", "propagation_delay": 30}
        """
    )
    pytester.makepyfile(
        test_user=f"""
        import json

        def test_retry_until_the_profile_reaches_ec2(roleport):
            iam, ec2 = roleport.client("iam"), roleport.client("ec2")
            iam.create_role(RoleName="app", AssumeRolePolicyDocument={EC2_TRUST!r})
            iam.create_instance_profile(InstanceProfileName="app")
            iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
            attempts = 0
            while True:
                try:
                    ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                      IamInstanceProfile={{"Name": "app"}})
                    break
                except ec2.exceptions.ClientError as error:
                    assert error.response["Error"]["Code"] == "InvalidParameterValue"
                    attempts += 1
                    roleport.advance(10)  # the code under test would sleep; the test moves the clock instead
            assert attempts == 3
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
