"""pytest fixtures that start the test forge servers; import them into a test module or conftest:

    from servers.fixtures import github_api_fixture, gitlab_api_fixture  # noqa: F401

(``tests/`` is on sys.path as pytest's rootdir conftest folder.) The fixtures are named
``github_api`` and ``gitlab_api``, and ``other_host`` (another host, for redirects).

Each test gets a fresh server on 127.0.0.1 with empty state. At teardown the fixture fails the
test if any request or answer did not conform to the OpenAPI description.
"""

from __future__ import annotations

import typing as t

import pytest

from .base import ApiServer
from .github_api import GitHubAPIServer
from .gitlab_api import GitLabAPIServer
from .hostile import OtherHost

T = t.TypeVar("T", bound=ApiServer)


def _serve(server: T) -> t.Iterator[T]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.violations == [], "\n".join(server.violations)


@pytest.fixture(name="github_api")
def github_api_fixture() -> t.Iterator[GitHubAPIServer]:
    """A GitHub API server; ``github_api.url`` is GITHUB_API_URL, ``github_api.token`` the token."""
    yield from _serve(GitHubAPIServer(read_only_tokens={"read-only-token-0123456789"}))


@pytest.fixture(name="gitlab_api")
def gitlab_api_fixture() -> t.Iterator[GitLabAPIServer]:
    """A GitLab API server.

    ``gitlab_api.url`` is CI_API_V4_URL, ``gitlab_api.token`` the PRIVATE-TOKEN.
    """
    yield from _serve(GitLabAPIServer())


@pytest.fixture(name="other_host")
def other_host_fixture() -> t.Iterator[OtherHost]:
    """A second server, another host than the forge's: it records every request that reaches it
    (a redirect must not bring it a token or a request body)."""
    yield from _serve(OtherHost())
