"""pytest fixtures that start the test forge servers; import them into a test module or conftest:

    from tests.servers.fixtures import github_api, gitlab_api  # noqa: F401

Each test gets a fresh server on 127.0.0.1 with empty state. At teardown the fixture fails the
test if any request or answer did not conform to the OpenAPI description.
"""

from __future__ import annotations

import typing as t

import pytest

from tests.servers.base import ApiServer
from tests.servers.github_api import GitHubAPIServer
from tests.servers.gitlab_api import GitLabAPIServer

T = t.TypeVar("T", bound=ApiServer)


def _serve(server: T) -> t.Iterator[T]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.violations == [], "\n".join(server.violations)


@pytest.fixture()
def github_api() -> t.Iterator[GitHubAPIServer]:
    """A GitHub API server; ``github_api.url`` is GITHUB_API_URL, ``github_api.token`` the token."""
    yield from _serve(GitHubAPIServer(read_only_tokens={"read-only-token-0123456789"}))


@pytest.fixture()
def gitlab_api() -> t.Iterator[GitLabAPIServer]:
    """A GitLab API server; ``gitlab_api.url`` is CI_API_V4_URL, ``gitlab_api.token`` the PRIVATE-TOKEN."""
    yield from _serve(GitLabAPIServer())
