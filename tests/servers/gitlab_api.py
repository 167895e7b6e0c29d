"""A stateful GitLab REST API v4 subset on 127.0.0.1: MR notes, commit statuses, jobs, artifacts.

Checked against tests/openapi/gitlab-notes.yaml. Served under ``/api/v4`` like GitLab, so that
``CI_API_V4_URL`` and ``gitlab.Gitlab(url)`` both point at it. Pagination as GitLab does it:
``page``/``per_page`` (default 20, max 100) with ``x-next-page``, ``x-page``, ``x-per-page``,
``x-total``, ``x-total-pages`` and a ``Link`` header. ``PRIVATE-TOKEN`` (or a Bearer token)
authenticates; a ``JOB-TOKEN`` may read job artifacts but writing notes with it is refused.
"""

from __future__ import annotations

import itertools
import typing as t
from dataclasses import dataclass, field

from .base import ApiServer, Reply, Request, iso

EPOCH = 1_704_067_200
BOT_USER = {
    "id": 7,
    "username": "project_42_bot_ci_golden",
    "name": "ci-golden",
    "state": "active",
    "locked": False,
    "avatar_url": None,
    "web_url": "https://gitlab.example.com/project_42_bot_ci_golden",
}


@dataclass
class StoredNote:
    id: int
    project: str
    iid: int
    body: str
    author: dict[str, t.Any]
    created: int
    updated: int
    system: bool = False


@dataclass
class StoredJob:
    id: int
    project: str
    pipeline_id: int
    name: str
    stage: str
    status: str
    artifacts: bytes | None
    bridge_to: int | None = None  # a trigger job: the downstream pipeline id


@dataclass
class GitLabState:
    notes: dict[int, StoredNote] = field(default_factory=dict)
    statuses: list[dict[str, t.Any]] = field(default_factory=list)
    jobs: dict[int, StoredJob] = field(default_factory=dict)


class GitLabAPIServer(ApiServer):
    prefix = "/api/v4"
    spec_file = "gitlab-notes.yaml"

    def __init__(self, *, job_token: str = "job-token-0123456789", **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.job_token = job_token
        self.state = GitLabState()
        self._ids = itertools.count(501)
        self._clock = itertools.count(1)
        project = r"/projects/(?P<project>[^/]+)"
        notes = rf"{project}/merge_requests/(?P<iid>-?\d+)/notes"
        self.route("GET", notes, self.list_notes, is_list=True)
        self.route("POST", notes, self.create_note)
        self.route("PUT", rf"{notes}/(?P<note_id>-?\d+)", self.update_note)
        self.route("DELETE", rf"{notes}/(?P<note_id>-?\d+)", self.delete_note)
        self.route("POST", rf"{project}/statuses/(?P<sha>[^/]+)", self.create_status)
        self.route(
            "GET", rf"{project}/pipelines/(?P<pipeline_id>-?\d+)/jobs", self.list_jobs, is_list=True
        )
        self.route(
            "GET",
            rf"{project}/pipelines/(?P<pipeline_id>-?\d+)/bridges",
            self.list_bridges,
            is_list=True,
        )
        self.route("GET", rf"{project}/jobs/(?P<job_id>-?\d+)/artifacts", self.job_artifacts)

    # -- helpers for tests ----------------------------------------------------------------------

    def tick(self) -> int:
        return EPOCH + next(self._clock)

    def add_note(
        self,
        project: str,
        iid: int,
        body: str,
        *,
        system: bool = False,
        author: dict[str, t.Any] | None = None,
    ) -> int:
        with self.lock:
            nid, now = next(self._ids), self.tick()
            author = author or {**BOT_USER, "id": 1, "username": "alice", "name": "Alice"}
            self.state.notes[nid] = StoredNote(nid, project, iid, body, author, now, now, system)
            return nid

    def notes(self, project: str, iid: int) -> list[StoredNote]:
        with self.lock:
            return sorted(
                (n for n in self.state.notes.values() if (n.project, n.iid) == (project, iid)),
                key=lambda n: (n.created, n.id),
            )

    def add_job(
        self,
        project: str,
        pipeline_id: int,
        name: str,
        *,
        artifacts: bytes | None = None,
        stage: str = "test",
        status: str = "success",
    ) -> int:
        with self.lock:
            jid = next(self._ids)
            self.state.jobs[jid] = StoredJob(
                jid, project, pipeline_id, name, stage, status, artifacts
            )
            return jid

    def add_bridge(
        self,
        project: str,
        pipeline_id: int,
        name: str,
        downstream_pipeline_id: int,
        *,
        stage: str = "test",
        status: str = "success",
    ) -> int:
        with self.lock:
            jid = next(self._ids)
            self.state.jobs[jid] = StoredJob(
                jid, project, pipeline_id, name, stage, status, None, downstream_pipeline_id
            )
            return jid

    # -- auth -----------------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        token = request.headers.get("private-token")
        bearer = request.headers.get("authorization", "")
        if token == self.token or bearer == f"Bearer {self.token}":
            return True
        job = request.headers.get("job-token")
        return (
            job == self.job_token
            and request.method == "GET"
            and request.path.endswith("/artifacts")
        )

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "401 Unauthorized"})

    def not_found(self) -> Reply:
        return Reply(404, {"error": "404 Not Found"})

    # -- representations ------------------------------------------------------------------------

    def _note_json(self, n: StoredNote) -> dict[str, t.Any]:
        return {
            "id": n.id,
            "type": None,
            "body": n.body,
            "attachment": None,
            "author": n.author,
            "created_at": iso(n.created),
            "updated_at": iso(n.updated),
            "system": n.system,
            "noteable_id": 9000 + n.iid,
            "noteable_type": "MergeRequest",
            "project_id": _project_id(n.project),
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": n.iid,
            "commands_changes": {},
        }

    def _page(self, request: Request, items: list[t.Any]) -> tuple[list[t.Any], dict[str, str]]:
        try:
            per_page = max(1, min(100, int(request.arg("per_page") or 20)))
            page = max(1, int(request.arg("page") or 1))
        except ValueError:
            per_page, page = 20, 1
        last = max(1, -(-len(items) // per_page))
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-total": str(len(items)),
            "x-total-pages": str(last),
            "x-next-page": str(page + 1) if page < last else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        link = self.link_header(self.url + request.path, request.query, page, last, per_page)
        if link:
            headers["Link"] = link
        return items[(page - 1) * per_page : page * per_page], headers

    def _pipeline(self, project: str, pipeline_id: int) -> dict[str, t.Any]:
        return {
            "id": pipeline_id,
            "iid": pipeline_id,
            "project_id": _project_id(project),
            "sha": "0" * 40,
            "ref": "main",
            "status": "success",
            "source": "merge_request_event",
            "created_at": iso(EPOCH),
            "updated_at": iso(EPOCH),
            "web_url": f"https://gitlab.example.com/{project}/-/pipelines/{pipeline_id}",
        }

    def _job_json(self, j: StoredJob) -> dict[str, t.Any]:
        job: dict[str, t.Any] = {
            "id": j.id,
            "name": j.name,
            "stage": j.stage,
            "status": j.status,
            "ref": "main",
            "tag": False,
            "allow_failure": False,
            "created_at": iso(EPOCH),
            "started_at": iso(EPOCH),
            "finished_at": iso(EPOCH + 60),
            "duration": 60.0,
            "queued_duration": 1.0,
            "web_url": f"https://gitlab.example.com/{j.project}/-/jobs/{j.id}",
            "pipeline": self._pipeline(j.project, j.pipeline_id),
        }
        if j.bridge_to is not None:
            job["downstream_pipeline"] = self._pipeline(j.project, j.bridge_to)
            return job
        job["artifacts"] = []
        job["tag_list"] = []
        job["artifacts_expire_at"] = None
        if j.artifacts is not None:
            job["artifacts"] = [
                {
                    "file_type": "archive",
                    "size": len(j.artifacts),
                    "filename": "artifacts.zip",
                    "file_format": "zip",
                }
            ]
            job["artifacts_file"] = {"filename": "artifacts.zip", "size": len(j.artifacts)}
        return job

    # -- handlers -------------------------------------------------------------------------------

    def list_notes(self, request: Request, project: str, iid: str) -> Reply:
        notes = self.notes(project, int(iid))
        if request.arg("order_by") == "updated_at":
            notes.sort(key=lambda n: (n.updated, n.id))
        if request.arg("sort", "desc") == "desc":
            notes.reverse()
        page, headers = self._page(request, [self._note_json(n) for n in notes])
        return Reply(200, page, headers)

    def _body(self, request: Request) -> str | Reply:
        data = request.json()
        if not isinstance(data, dict) or not isinstance(data.get("body"), str) or not data["body"]:
            return Reply(400, {"error": "body is missing"})
        if len(data["body"]) > 1_000_000:
            return Reply(
                400, {"message": {"note": ["is too long (maximum is 1000000 characters)"]}}
            )
        return t.cast(str, data["body"])

    def create_note(self, request: Request, project: str, iid: str) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        nid = self.add_note(project, int(iid), body, author=BOT_USER)
        return Reply(201, self._note_json(self.state.notes[nid]))

    def _find(self, project: str, iid: str, note_id: str) -> StoredNote | None:
        n = self.state.notes.get(int(note_id))
        return n if n is not None and (n.project, n.iid) == (project, int(iid)) else None

    def update_note(self, request: Request, project: str, iid: str, note_id: str) -> Reply:
        n = self._find(project, iid, note_id)
        if n is None:
            return Reply(404, {"message": "404 Note Not Found"})
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        n.body, n.updated = body, self.tick()
        return Reply(200, self._note_json(n))

    def delete_note(self, request: Request, project: str, iid: str, note_id: str) -> Reply:
        n = self._find(project, iid, note_id)
        if n is None:
            return Reply(404, {"message": "404 Note Not Found"})
        del self.state.notes[n.id]
        return Reply(204)

    def create_status(self, request: Request, project: str, sha: str) -> Reply:
        data = request.json()
        if not isinstance(data, dict):
            data = {k: v[-1] for k, v in request.query.items()}
        if data.get("state") not in (
            "pending",
            "running",
            "success",
            "failed",
            "canceled",
            "skipped",
        ):
            return Reply(400, {"error": "state does not have a valid value"})
        now = iso(self.tick())
        status = {
            "id": next(self._ids),
            "sha": sha,
            "ref": data.get("ref"),
            "status": data["state"],
            "name": data.get("name") or data.get("context") or "default",
            "target_url": data.get("target_url"),
            "description": data.get("description"),
            "created_at": now,
            "started_at": None,
            "finished_at": now if data["state"] in ("success", "failed", "canceled") else None,
            "allow_failure": False,
            "coverage": None,
            "pipeline_id": 1,
            "author": BOT_USER,
        }
        self.state.statuses.append({**status, "project": project})
        return Reply(201, status)

    def _jobs(self, request: Request, project: str, pipeline_id: str, *, bridges: bool) -> Reply:
        with self.lock:
            jobs = [
                j
                for j in self.state.jobs.values()
                if j.project == project
                and j.pipeline_id == int(pipeline_id)
                and (j.bridge_to is not None) == bridges
            ]
        scope = request.query.get("scope[]") or request.query.get("scope")
        if scope:
            jobs = [j for j in jobs if j.status in scope]
        page, headers = self._page(
            request, [self._job_json(j) for j in sorted(jobs, key=lambda j: -j.id)]
        )
        return Reply(200, page, headers)

    def list_jobs(self, request: Request, project: str, pipeline_id: str) -> Reply:
        return self._jobs(request, project, pipeline_id, bridges=False)

    def list_bridges(self, request: Request, project: str, pipeline_id: str) -> Reply:
        return self._jobs(request, project, pipeline_id, bridges=True)

    def job_artifacts(self, request: Request, project: str, job_id: str) -> Reply:
        j = self.state.jobs.get(int(job_id))
        if j is None or j.project != project or j.artifacts is None:
            return Reply(404, {"message": "404 Not found"})
        return Reply(
            200,
            j.artifacts,
            {
                "Content-Type": "application/zip",
                "Content-Disposition": 'attachment; filename="artifacts.zip"',
            },
        )


def _project_id(project: str) -> int:
    return int(project) if project.isdigit() else 42
