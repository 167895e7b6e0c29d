"""A stateful GitHub REST API subset on 127.0.0.1: issue comments, commit statuses, artifacts.

Checked against tests/openapi/github-subset.json (trimmed from @octokit/openapi). Behaves
like GitHub where our clients can tell: ids, ``created_at``/``updated_at``, ``per_page``
(default 30, max 100) and ``page`` with a ``Link`` header, ``since``, 401 for a bad token,
403 "Resource not accessible by integration" for a read-only token on writes, 404 for
unknown comments, 422 for invalid bodies, and artifact downloads that redirect (302) to a
storage URL which must be fetched without the token.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from .base import ApiServer, Reply, Request, iso

EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
READ_ONLY_MESSAGE = "Resource not accessible by integration"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")  # GitHub's owner and repository names


def simple_user(login: str, user_id: int) -> dict[str, t.Any]:
    base = (
        f"https://api.github.com/users/{quote(login)}"  # github-actions%5Bbot%5D, as GitHub sends
    )
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcj{user_id}",
        "type": "Bot" if "[bot]" in login else "User",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"https://github.com/{quote(login)}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "site_admin": False,
        "user_view_type": "public",
    }


BOT = simple_user("github-actions[bot]", 41898282)


@dataclass
class StoredComment:
    id: int
    owner: str
    repo: str
    number: int
    body: str
    user: dict[str, t.Any]
    created: int
    updated: int


@dataclass
class StoredArtifact:
    id: int
    name: str
    data: bytes
    run_id: int
    expired: bool = False
    created: int = EPOCH


@dataclass
class GitHubState:
    comments: dict[int, StoredComment] = field(default_factory=dict)
    statuses: list[dict[str, t.Any]] = field(default_factory=list)
    artifacts: dict[int, StoredArtifact] = field(default_factory=dict)


class GitHubAPIServer(ApiServer):
    spec_file = "github-subset.json"

    def __init__(self, *, read_only_tokens: t.Collection[str] = (), **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.read_only_tokens = set(read_only_tokens)
        self.state = GitHubState()
        self._ids = itertools.count(1001)
        self._clock = itertools.count(1)
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        self.route(
            "GET", rf"{repo}/issues/(?P<number>-?\d+)/comments", self.list_comments, is_list=True
        )
        self.route("POST", rf"{repo}/issues/(?P<number>-?\d+)/comments", self.create_comment)
        self.route("PATCH", rf"{repo}/issues/comments/(?P<comment_id>-?\d+)", self.update_comment)
        self.route("DELETE", rf"{repo}/issues/comments/(?P<comment_id>-?\d+)", self.delete_comment)
        self.route("POST", rf"{repo}/statuses/(?P<sha>[^/]+)", self.create_status)
        self.route(
            "GET",
            rf"{repo}/actions/runs/(?P<run_id>-?\d+)/artifacts",
            self.list_artifacts,
            is_list=True,
        )
        self.route(
            "GET",
            rf"{repo}/actions/artifacts/(?P<artifact_id>-?\d+)/(?P<archive_format>[^/]+)",
            self.download_artifact,
        )
        self.route("GET", r"/_storage/(?P<artifact_id>\d+)\.zip", self.storage, checked=False)

    # -- helpers for tests ----------------------------------------------------------------------

    def tick(self) -> int:
        return EPOCH + next(self._clock)

    def add_comment(
        self, owner: str, repo: str, number: int, body: str, user: dict[str, t.Any] | None = None
    ) -> int:
        with self.lock:
            cid, now = next(self._ids), self.tick()
            self.state.comments[cid] = StoredComment(
                cid, owner, repo, number, body, user or simple_user("octocat", 1), now, now
            )
            return cid

    def comments(self, owner: str, repo: str, number: int) -> list[StoredComment]:
        with self.lock:
            return sorted(
                (
                    c
                    for c in self.state.comments.values()
                    if (c.owner, c.repo, c.number) == (owner, repo, number)
                ),
                key=lambda c: (c.created, c.id),
            )

    def add_artifact(
        self, owner: str, repo: str, run_id: int, name: str, data: bytes, *, expired: bool = False
    ) -> int:
        with self.lock:
            aid = next(self._ids)
            self.state.artifacts[aid] = StoredArtifact(
                aid, name, data, run_id, expired, self.tick()
            )
            self._artifact_repo = (owner, repo)
            return aid

    # -- auth -----------------------------------------------------------------------------------

    def _token(self, request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() in ("bearer", "token") else None

    def dispatch(self, request: Request) -> tuple[Reply, bool]:
        parts = request.path.split("/")
        if (
            len(parts) > 3
            and parts[1] == "repos"
            and not (_NAME.match(unquote(parts[2])) and _NAME.match(unquote(parts[3])))
        ):
            return Reply(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            ), True
        return super().dispatch(request)

    def authorized(self, request: Request) -> bool:
        if request.path.startswith("/_storage/"):
            return True
        token = self._token(request)
        return token == self.token or token in self.read_only_tokens

    def _read_only(self, request: Request) -> Reply | None:
        if self._token(request) in self.read_only_tokens:
            return Reply(
                403,
                {
                    "message": READ_ONLY_MESSAGE,
                    "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
                    "status": "403",
                },
            )
        return None

    # -- representations ------------------------------------------------------------------------

    def _comment_json(self, c: StoredComment) -> dict[str, t.Any]:
        api = f"{self.url}/repos/{c.owner}/{c.repo}"
        return {
            "id": c.id,
            "node_id": f"IC_kwDO{c.id}",
            "url": f"{api}/issues/comments/{c.id}",
            "html_url": f"https://github.com/{c.owner}/{c.repo}/pull/{c.number}#issuecomment-{c.id}",
            "body": c.body,
            "user": c.user,
            "created_at": iso(c.created),
            "updated_at": iso(c.updated),
            "issue_url": f"{api}/issues/{c.number}",
            "author_association": "NONE",
        }

    def _page(
        self, request: Request, items: list[t.Any], *, default: int = 30
    ) -> tuple[list[t.Any], dict[str, str]]:
        try:
            per_page = max(1, min(100, int(request.arg("per_page") or default)))
            page = max(1, int(request.arg("page") or 1))
        except ValueError:
            per_page, page = default, 1
        last = max(1, -(-len(items) // per_page))
        headers = {}
        link = self.link_header(self.url + request.path, request.query, page, last, per_page)
        if link:
            headers["Link"] = link
        return items[(page - 1) * per_page : page * per_page], headers

    # -- handlers -------------------------------------------------------------------------------

    def list_comments(self, request: Request, owner: str, repo: str, number: str) -> Reply:
        comments = self.comments(owner, repo, int(number))
        since = request.arg("since")
        if since:
            comments = [c for c in comments if iso(c.updated) >= since]
        page, headers = self._page(request, [self._comment_json(c) for c in comments])
        return Reply(200, page, headers)

    def _body(self, request: Request) -> str | Reply:
        data = request.json()
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            return Reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": "https://docs.github.com/rest",
                    "errors": [
                        {"resource": "IssueComment", "code": "missing_field", "field": "body"}
                    ],
                },
            )
        if len(data["body"]) > 65536:
            return Reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": "https://docs.github.com/rest",
                    "errors": [
                        {
                            "resource": "IssueComment",
                            "code": "custom",
                            "field": "body",
                            "message": "body is too long (maximum is 65536 characters)",
                        }
                    ],
                },
            )
        return t.cast(str, data["body"])

    def create_comment(self, request: Request, owner: str, repo: str, number: str) -> Reply:
        denied = self._read_only(request)
        if denied:
            return denied
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        cid = self.add_comment(owner, repo, int(number), body, BOT)
        c = self.state.comments[cid]
        return Reply(201, self._comment_json(c), {"Location": self._comment_json(c)["url"]})

    def update_comment(self, request: Request, owner: str, repo: str, comment_id: str) -> Reply:
        denied = self._read_only(request)
        if denied:
            return denied
        c = self.state.comments.get(int(comment_id))
        if c is None or (c.owner, c.repo) != (owner, repo):
            return Reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": "https://docs.github.com/rest",
                    "errors": [{"resource": "IssueComment", "code": "missing", "field": "id"}],
                },
            )
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        c.body, c.updated = body, self.tick()
        return Reply(200, self._comment_json(c))

    def delete_comment(self, request: Request, owner: str, repo: str, comment_id: str) -> Reply:
        denied = self._read_only(request)
        if denied:
            return Reply(404, {"message": "Not Found"})
        c = self.state.comments.get(int(comment_id))
        if c is None or (c.owner, c.repo) != (owner, repo):
            return Reply(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            )
        del self.state.comments[c.id]
        return Reply(204)

    def create_status(self, request: Request, owner: str, repo: str, sha: str) -> Reply:
        denied = self._read_only(request)
        if denied:
            return denied
        data = request.json()
        states = ("error", "failure", "pending", "success")
        if not isinstance(data, dict) or data.get("state") not in states:
            return Reply(422, {"message": "Validation Failed"})
        now = self.tick()
        status = {
            "url": f"{self.url}/repos/{owner}/{repo}/statuses/{sha}",
            "avatar_url": None,
            "id": next(self._ids),
            "node_id": "SC_kwDO",
            "state": data["state"],
            "description": data.get("description"),
            "target_url": data.get("target_url"),
            "context": data.get("context") or "default",
            "created_at": iso(now),
            "updated_at": iso(now),
            "creator": BOT,
        }
        self.state.statuses.append({**status, "owner": owner, "repo": repo, "sha": sha})
        return Reply(201, status)

    def _artifact_json(self, owner: str, repo: str, a: StoredArtifact) -> dict[str, t.Any]:
        api = f"{self.url}/repos/{owner}/{repo}/actions"
        return {
            "id": a.id,
            "node_id": f"MDg6QXJ0aWZhY3Qx{a.id}",
            "name": a.name,
            "size_in_bytes": len(a.data),
            "url": f"{api}/artifacts/{a.id}",
            "archive_download_url": f"{api}/artifacts/{a.id}/zip",
            "expired": a.expired,
            "created_at": iso(a.created),
            "expires_at": iso(a.created + 90 * 86400),
            "updated_at": iso(a.created),
            "digest": "sha256:" + hashlib.sha256(a.data).hexdigest(),
            "workflow_run": {
                "id": a.run_id,
                "repository_id": 1,
                "head_repository_id": 1,
                "head_branch": "main",
                "head_sha": "0" * 40,
            },
        }

    def list_artifacts(self, request: Request, owner: str, repo: str, run_id: str) -> Reply:
        with self.lock:
            found = [a for a in self.state.artifacts.values() if a.run_id == int(run_id)]
        name = request.arg("name")
        if name is not None:
            found = [a for a in found if a.name == name]
        page, headers = self._page(request, [self._artifact_json(owner, repo, a) for a in found])
        return Reply(200, {"total_count": len(found), "artifacts": page}, headers)

    def download_artifact(
        self, request: Request, owner: str, repo: str, artifact_id: str, archive_format: str
    ) -> Reply:
        a = self.state.artifacts.get(int(artifact_id))
        if a is None or archive_format != "zip":
            return Reply(404, {"message": "Not Found"})
        if a.expired:
            return Reply(
                410,
                {
                    "message": "Artifact has expired",
                    "documentation_url": "https://docs.github.com/rest",
                },
            )
        # another host name for the same server, as GitHub redirects to a storage host
        storage = self.origin.replace("127.0.0.1", "localhost")
        return Reply(
            302, None, {"Location": f"{storage}/_storage/{a.id}.zip?sig=signed-url-{a.id}"}
        )

    def storage(self, request: Request, artifact_id: str) -> Reply:
        if "authorization" in request.headers:  # storage rejects requests that carry a token
            return Reply(
                400,
                b"<Error><Code>InvalidAuthenticationInfo</Code></Error>",
                {"Content-Type": "application/xml"},
            )
        a = self.state.artifacts.get(int(artifact_id))
        if a is None:
            return Reply(404, b"")
        return Reply(200, a.data, {"Content-Type": "application/zip"})
