"""`gocoder collect --github OWNER/NAME`: merged PRs from the GitHub
REST API, standard library only.

Requests (https://docs.github.com/en/rest):
- GET /repos/{o}/{n}/pulls?state=closed&sort=created&direction=asc&per_page=100 (Link: rel="next");
  closed PRs with merged_at null were not merged and are skipped;
- GET /repos/{o}/{n}/pulls/{N}/files?per_page=100 (filename, status, sha, previous_filename);
- after: GET /repos/{o}/{n}/git/blobs/{sha} (base64); before: GET
  /repos/{o}/{n}/contents/{path}?ref= {base.sha}, falling back to its blob when the file
  is over the contents API's 1 MB.
  NOTE(gocoder): before is the file at the PR's base.sha, the base branch when the PR was last
  updated; the files list is against the merge base, so rarely a before holds later base changes.

The token comes from $GITHUB_TOKEN and goes only into the Authorization header (dropped on a
redirect to another host); it is never printed, logged or written. Every GET is conditional on its
cached ETag (a 304 costs no rate limit); the cache keys on the URL alone. Rate limits: a 403/429
waits for retry-after, else for x-ratelimit-reset when x-ratelimit-remaining is 0, else backs off
(secondary limits); 5xx and network errors retry with backoff; the total wait is bounded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.config import CollectConfig
from gocoder.records import decode_go, make_record, skip_path

_STATUS = {"added": "added", "removed": "deleted", "modified": "modified", "changed": "modified",
           "renamed": "renamed", "copied": "added"}
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class HTTPStatusError(GocoderError):
    """An error answer from the API that retrying will not fix (the message names the URL)."""

    def __init__(self, msg: str, code: int):
        super().__init__(msg)
        self.code = code


class _SameHostRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never carries the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")
        return new


class GitHubClient:
    """GET with ETag cache, rate-limit waits and retries. Thread-safe (no shared mutable state but
    the cache files, each written atomically)."""

    def __init__(
        self,
        cfg: CollectConfig,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.base = cfg.github_api.rstrip("/")
        self.cache = Path(cfg.github_cache)
        self.cfg, self.sleep, self.clock = cfg, sleep, clock
        self._token = token  # only ever placed in the Authorization header
        self._opener = urllib.request.build_opener(_SameHostRedirect())
        self.waited = 0.0  # seconds slept for rate limits, against cfg.github_max_wait_s
        self.requests = self.not_modified = 0

    def get(self, url: str) -> tuple[Any, str | None]:
        """The JSON body of url (absolute, or a path under the base) and its next-page URL.

        Every error names the URL and may quote the server (its message, a Link URL): the token is
        redacted from it, since a proxy or a misconfigured server can echo the request back.
        """
        try:
            return self._get(url)
        except HTTPStatusError as e:
            raise HTTPStatusError(self.redact(str(e)), e.code) from None
        except GocoderError as e:
            raise GocoderError(self.redact(str(e))) from None

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _get(self, url: str) -> tuple[Any, str | None]:
        url = url if url.startswith(("http://", "https://")) else self.base + url
        key = self.cache / (hashlib.sha256(url.encode()).hexdigest() + ".json")
        cached = json.loads(key.read_text()) if key.exists() else None
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                   "User-Agent": "gocoder-collect"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if cached and cached.get("etag"):
            headers["If-None-Match"] = cached["etag"]
        for attempt in range(self.cfg.github_retries + 1):
            self.requests += 1
            try:
                with self._opener.open(urllib.request.Request(url, headers=headers),
                                       timeout=self.cfg.github_timeout_s) as resp:
                    body = resp.read().decode("utf-8")
                    link, etag = resp.headers.get("Link"), resp.headers.get("ETag")
                    self._pace(resp.headers)
            except urllib.error.HTTPError as e:
                if e.code == 304 and cached:
                    self.not_modified += 1
                    self._pace(e.headers)
                    return json.loads(cached["body"]), _next(cached.get("link"))
                msg = _message(e)
                wait = self._limit_wait(e.code, e.headers, msg, attempt)
                if wait is None or attempt == self.cfg.github_retries:
                    tries = f" (after {attempt + 1} tries)" if wait is not None else ""
                    raise HTTPStatusError(
                        f"{_public(url)}: HTTP {e.code} {msg}{tries}", e.code
                    ) from None
                self._wait(wait, url, e.code)
                continue
            except (urllib.error.URLError, OSError) as e:
                if attempt == self.cfg.github_retries:
                    reason = getattr(e, "reason", e)
                    raise GocoderError(
                        f"{_public(url)}: GitHub API unreachable: {reason}"
                    ) from None
                self._wait(min(2.0**attempt, 30.0), url, None, rate_limit=False)
                continue
            if etag:
                key.parent.mkdir(parents=True, exist_ok=True)
                tmp = key.with_name(f"{key.name}.{os.getpid()}.{id(body)}.tmp")
                tmp.write_text(json.dumps({"url": url, "etag": etag, "link": link, "body": body}))
                tmp.replace(key)
            try:
                return json.loads(body), _next(link)
            except json.JSONDecodeError:
                raise GocoderError(
                    f"{_public(url)}: not JSON (is {self.base} a GitHub API?)"
                ) from None
        raise GocoderError(
            f"{_public(url)}: still failing after {self.cfg.github_retries + 1} tries"
        )

    def pages(self, url: str) -> Iterator[Any]:
        """Every item of a paginated list, following Link rel="next"."""
        next_url: str | None = url
        while next_url:
            items, next_url = self.get(next_url)
            if not isinstance(items, list):
                raise GocoderError(f"{_public(url)}: expected a JSON list")
            yield from items

    def _limit_wait(self, code: int, h: Any, msg: str, attempt: int) -> float | None:
        """Seconds to wait before retrying an error response, or
        None if it is not worth retrying."""
        if code in (403, 429):
            if h.get("retry-after"):
                return float(h["retry-after"])
            if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset"):
                return max(0.0, float(h["x-ratelimit-reset"]) - self.clock()) + 1.0
            if code == 429 or "secondary rate limit" in msg.lower():
                return 60.0 * 2**attempt  # GitHub's advice: at least a minute, then longer
            return None  # a plain 403: forbidden, retrying will not help
        if code >= 500:
            return min(2.0**attempt, 30.0)
        return None

    def _pace(self, h: Any) -> None:
        """Out of requests: sleep until the window resets, before the next request fails."""
        if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset"):
            self._wait(
                max(0.0, float(h["x-ratelimit-reset"]) - self.clock()) + 1.0, self.base, None
            )

    def _wait(self, seconds: float, url: str, code: int | None, rate_limit: bool = True) -> None:
        if rate_limit and self.waited + seconds > self.cfg.github_max_wait_s:
            raise GocoderError(
                f"{_public(url)}: rate limited{f' (HTTP {code})' if code else ''}; "
                f"the wait of {seconds:.0f}s "
                f"passes collect.github_max_wait_s={self.cfg.github_max_wait_s:.0f}; "
                "rerun later to resume"
            )
        self.waited += seconds if rate_limit else 0.0
        self.sleep(seconds)


def _next(link: str | None) -> str | None:
    m = _NEXT.search(link or "")
    return m.group(1) if m else None


def _public(url: str) -> str:
    return url.split("?", 1)[0]


def _message(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read().decode("utf-8", "replace")).get("message", e.reason))
    except (ValueError, AttributeError, OSError):
        return str(e.reason)


class GitHubSource:
    name = "github"

    def __init__(self, slug: str, cfg: CollectConfig, client: GitHubClient | None = None):
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", slug):
            raise GocoderError(f"--github {slug!r}: expected OWNER/NAME")
        self.repo, self.cfg = slug, cfg
        self.client = client or GitHubClient(cfg, token=os.environ.get("GITHUB_TOKEN") or None)
        self.prefix = f"/repos/{slug}"

    def total(self) -> None:
        return None  # unknown until the last page is read

    def units(self, skips: Counter[str]) -> Iterator[tuple[str, Any]]:
        url = f"{self.prefix}/pulls?state=closed&sort=created&direction=asc&per_page=100"
        for pr in self.client.pages(url):
            if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
                raise GocoderError(
                    f"{self.client.base}{_public(url)}: malformed GitHub API answer: "
                    "a pull request without a number"
                )
            if not pr.get("merged_at"):
                skips["not-merged"] += 1
                yield f"pr:{pr['number']}", None
            else:
                yield f"pr:{pr['number']}", pr

    def work(self, pr: dict[str, Any]) -> tuple[list[dict[str, Any]], Counter[str]]:
        try:
            return self._work(pr)
        except (KeyError, TypeError, AttributeError, binascii.Error) as e:
            # A field missing or of the wrong type in an answer (a proxy, an API
            # change): one line, not a traceback.
            what = f"no field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise GocoderError(
                self.client.redact(
                    f"{self.client.base}{self.prefix}/pulls/{pr['number']}: "
                    f"malformed GitHub API answer ({what})"
                )
            ) from None

    def _work(self, pr: dict[str, Any]) -> tuple[list[dict[str, Any]], Counter[str]]:
        skips: Counter[str] = Counter()
        files = []
        for f in self.client.pages(f"{self.prefix}/pulls/{pr['number']}/files?per_page=100"):
            status = _STATUS.get(f["status"])
            old_path = f.get("previous_filename") or f["filename"]
            reason = skip_path(f["filename"]) or (
                skip_path(old_path) if status == "renamed" else None
            )
            if status is None:
                reason = reason or "unchanged"
            if reason:
                skips[reason] += 1
                continue
            texts = []
            for side in ("before", "after"):
                if (side == "before" and status == "added") or (
                    side == "after" and status == "deleted"
                ):
                    texts.append("")
                    continue
                data = self._before(old_path, pr) if side == "before" else self._blob(f["sha"])
                text, reason = (
                    decode_go(data, self.cfg.max_file_bytes)
                    if data is not None
                    else (None, "missing")
                )
                if reason:
                    skips[reason] += 1
                    break
                texts.append(text)
            if len(texts) == 2:
                files.append(
                    {"path": f["filename"], "status": status, "before": texts[0], "after": texts[1]}
                )
        if not files:
            skips["no-go-change"] += 1
            return [], skips
        title, body = (pr.get("title") or "").strip(), (pr.get("body") or "").strip()
        rec = make_record("github", self.repo, title, body, files, pr_number=pr["number"],
                          sha=pr.get("merge_commit_sha"), merged_at=pr.get("merged_at"))
        return [rec], skips

    def _blob(self, sha: str) -> bytes:
        blob, _ = self.client.get(f"{self.prefix}/git/blobs/{sha}")
        return _decode(blob)

    def _before(self, path: str, pr: dict[str, Any]) -> bytes | None:
        ref = (pr.get("base") or {}).get("sha")
        try:
            item, _ = self.client.get(
                f"{self.prefix}/contents/{urllib.parse.quote(path)}?ref={ref}"
            )
        except HTTPStatusError as e:
            if e.code == 404:
                return None  # not on the base branch any more (or never was)
            raise
        if not isinstance(item, dict) or item.get("type") != "file":
            return None
        if (
            item.get("encoding") == "base64"
            and item.get("content") is not None
            and item.get("size", 0) < 1 << 20
        ):
            return _decode(item)
        return self._blob(item["sha"])  # over 1 MB the contents API leaves content empty

    def close(self) -> None:
        pass


def _decode(obj: dict[str, Any]) -> bytes:
    if obj.get("encoding") == "base64":
        return base64.b64decode(obj.get("content") or "")
    return (obj.get("content") or "").encode("utf-8")
