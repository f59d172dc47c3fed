"""Rotating the JWT key the documented way logs no one out while two generations serve together.

A deploy is a rollout: for a while instances of the previous deploy (one generation) and of
the new one serve side by side, each with the secret versions it resolved when it started.
The procedure (docs/deployment.md, "Rotating the JWT key") is two deploys, each pinning new
versions: first the new key is added as a previous key everywhere, then it becomes the
signing key with the old one as previous. Every token either generation signs must verify on
both, at every step.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from infra import deploy
from shared import manifest
from tests.platform import standin
from tests.platform.conftest import standin_config
from tests.platform.standin import LB_IP, Platform, SecretManager

SIGNER, CHECKER = "auth-anonymous", "auth-client-me"
SIGNER_PATH, CHECKER_PATH = "/api/shared/auth/anonymous", "/api/client/auth/me"


class Rollout:
    """Generations of the two functions, each started from a plan with its pinned versions."""

    def __init__(self, tmp: Path, store: SecretManager, values: dict[str, str]) -> None:
        self.tmp, self.store, self.values = tmp, store, values
        self.config = standin_config(f"rot{uuid.uuid4().hex[:8]}:")
        self.functions = tuple(fn for fn in manifest.load().functions if fn.name in (SIGNER, CHECKER))
        self.generations: list[Platform] = []
        self.clients = 0
        self.refused = 0

    def deploy(self, **versions: str) -> Platform:
        """A new generation: the plan with these [secret_versions], its instances started now."""
        config = replace(self.config, secret_versions={**self.config.secret_versions, **versions})
        workdir = self.tmp / f"gen{len(self.generations)}"
        the_plan = deploy.plan(self.functions, config, {}, workdir / "plan")
        gen = Platform(the_plan, self.values, workdir, secret_manager=self.store)
        gen.start_all([SIGNER, CHECKER])
        self.generations.append(gen)
        return gen

    def token(self, gen: Platform) -> str:
        self.clients += 1
        headers = {"Content-Type": "application/json", "X-Forwarded-For": f"198.51.100.{self.clients}, {LB_IP}"}
        resp = gen._forward(SIGNER, "POST", SIGNER_PATH, headers, b"{}")
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return json.loads(resp.get_data())["access_token"]

    def status(self, gen: Platform, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"198.51.100.250, {LB_IP}"}
        code = gen._forward(CHECKER, "GET", CHECKER_PATH, headers, b"").status_code
        self.refused += code == 401
        return code

    def every_token_verifies_on_both(self, old: Platform, new: Platform) -> None:
        tokens = [self.token(old), self.token(new)]
        for token in tokens:
            for gen in (old, new):
                assert self.status(gen, token) == 200

    def stop(self) -> None:
        for gen in self.generations:
            gen.stop()


@pytest.fixture
def rollout(tmp_path: Path, test_env: dict[str, str]):
    values = standin.test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    store = SecretManager({name: [value] for name, value in values.items()})
    r = Rollout(tmp_path, store, values)
    try:
        yield r
    finally:
        r.stop()


def test_the_documented_rotation_gives_zero_401s_across_both_deploys(rollout: Rollout):
    store = rollout.store
    old_key = store.access("AUTH_JWT_SECRET:1")
    new_key = "rotated-signing-key-" + uuid.uuid4().hex * 2

    first = rollout.deploy()  # everything at version 1

    # Deploy 1: the new key becomes a previous key everywhere; signing does not change.
    previous = store.add("AUTH_JWT_PREVIOUS_SECRETS", new_key)
    second = rollout.deploy(AUTH_JWT_PREVIOUS_SECRETS=previous)
    rollout.every_token_verifies_on_both(first, second)

    # Deploy 2: the new key signs, the old one stays as previous.
    signing = store.add("AUTH_JWT_SECRET", new_key)
    previous = store.add("AUTH_JWT_PREVIOUS_SECRETS", old_key)
    # The second generation scales up after those versions exist: its new instances still
    # mount the second deploy's pinned versions, so they sign with the old key like its warm
    # ones (a token of theirs verifies where only the old key is known).
    second.stop()
    second.start_all([SIGNER, CHECKER])
    assert rollout.status(first, rollout.token(second)) == 200
    third = rollout.deploy(AUTH_JWT_SECRET=signing, AUTH_JWT_PREVIOUS_SECRETS=previous)
    rollout.every_token_verifies_on_both(second, third)

    assert rollout.refused == 0
    # The checks are real: the first generation never knew the new key, so a token the third
    # signs is refused there. The procedure never lets those two serve together.
    assert rollout.status(first, rollout.token(third)) == 401


def test_an_unpinned_new_signing_version_reaches_new_instances_only(rollout: Rollout):
    # What pinning prevents: with `latest`, an instance that starts after a new version is
    # added signs with it while the warm ones still reject it.
    first = rollout.deploy()
    store = rollout.store
    store.add("AUTH_JWT_SECRET", "unannounced-key-" + uuid.uuid4().hex * 2)
    floating = replace(rollout.config, secret_versions={})
    late = Platform(
        deploy.plan(rollout.functions, floating, {}, rollout.tmp / "late" / "plan", local=True),
        rollout.values,
        rollout.tmp / "late",
        secret_manager=store,
    )
    rollout.generations.append(late)
    assert rollout.status(first, rollout.token(late)) == 401
