"""The Authress admin calls that `setup --plan` and `--apply` make, as the OpenAPI description
(Authress/authress-local `api/openapi.yaml`) lists them: getAccountIdentities `GET /v1/identities`,
delegateAuthentication `POST /v1/identities`, getRecord `GET /v1/records/{recordId}`, createRecord
`POST /v1/records` and updateRecord `PUT /v1/records/{recordId}`. Each refusal becomes one error that
names the fix; no message holds the admin key or the token minted from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..calls import Budget, CallFailed, Wording, call_json
from ..errors import HelperError, quoted
from . import shapes

if TYPE_CHECKING:
    from ..network import Session

ATTEMPTS = 3  # reads and PUT; a POST is sent once (network.py)
WORDING = Wording(
    lead="Authress gave no usable answer to {method}",
    reach="retry later, or check --api-url and that this machine can reach it",
    not_ours="check that --api-url is the Authress API (no proxy or login page in between)",
    url_fix="check --api-url",
    url_fix_always=True,
    posted="; the change may or may not have been made: run `setup --plan` to see",
)


class AdminError(HelperError):
    """Authress refused an admin call, or could not be asked."""


class Conflict(AdminError):
    """Authress answered 409 or 412: what was to be made exists (another run made it meanwhile?)."""


class BodyRefused(AdminError):
    """Authress answered 400: the body sent is outside what it accepts (the caller names the field)."""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str  # the description's name for it, which the 401 and 403 messages show
    ok: tuple[int, ...]  # the answers that mean it was done (the description's, and what Authress sends)
    absent: tuple[int, ...] = ()  # the answers that mean there is no such thing
    answer: dict[str, Any] | None = None  # what an `ok` answer's JSON must be (shapes.py); None: not read


LIST_IDENTITIES = Operation("GET", "/v1/identities", "getAccountIdentities", (200,), answer=shapes.IDENTITIES)
LINK_IDENTITY = Operation("POST", "/v1/identities", "delegateAuthentication", (200, 201))
GET_RECORD = Operation("GET", "/v1/records/{recordId}", "getRecord", (200,), (404,), shapes.RECORD)
CREATE_RECORD = Operation("POST", "/v1/records", "createRecord", (200, 201))
UPDATE_RECORD = Operation("PUT", "/v1/records/{recordId}", "updateRecord", (200, 202, 204))
# 404: already gone, which is what was wanted.
DELETE_RECORD = Operation("DELETE", "/v1/records/{recordId}", "deleteRecord", (200, 202, 204), (404,))
LIST_RECORDS = Operation("GET", "/v1/records", "getRecords", (200,), answer=shapes.RECORDS)
GET_ROLE = Operation("GET", "/v1/roles/{roleId}", "getRole", (200,), (404,), shapes.ROLE)
PAGES = 50  # getRecords gives at most 20 a page: 1000 records, then the listing says it stopped


class AdminApi:
    """One account's admin API, called with the service client's minted token as Bearer."""

    def __init__(self, client: Session, api_url: str, token: str, who: str, timeout: float, account_id: str) -> None:
        self._client, self._token, self._timeout = client, token, timeout
        self.api_url, self.account_id = api_url.rstrip("/"), account_id
        self.who = who  # e.g. 'service client "sc_admin" (key from $AUTHRESS_KEY)'

    def identities(self) -> dict[tuple[str, str], str]:
        """(issuer, audience) -> userIdExpression (default `{sub}`) of every trusted identity."""
        body = self._call(LIST_IDENTITIES)
        return {(i["issuer"], i["audience"]): i.get("userIdExpression") or "{sub}" for i in body["identities"]}

    def role_exists(self, role_id: str) -> bool:
        """Whether getRole finds the role (404: the account has none of that ID)."""
        return self._call(GET_ROLE, record_id=role_id) is not None

    def records(self, marker: str) -> tuple[list[dict[str, Any]], bool]:
        """(the ACTIVE records whose text holds `marker`, whether every page was read), page by page."""
        found: list[dict[str, Any]] = []
        query = {"filter": marker, "status": "ACTIVE", "limit": "20"}
        for _ in range(PAGES):
            body = self._call(LIST_RECORDS, query=query)
            found += body["records"]
            cursor = ((body.get("pagination") or {}).get("next") or {}).get("cursor")
            if not cursor:
                return found, True
            query = {**query, "cursor": cursor}
        return found, False

    def link_identity(self, issuer: str, audience: str) -> None:
        self._call(LINK_IDENTITY, {"issuer": issuer, "preferredAudience": audience})

    def record(self, record_id: str) -> dict[str, Any] | None:
        """The access record, or None when Authress answers 404 (no such record)."""
        body: dict[str, Any] | None = self._call(GET_RECORD, record_id=record_id)
        return body

    def create_record(self, record: dict[str, Any]) -> None:
        self._call(CREATE_RECORD, record)

    def update_record(self, record_id: str, record: dict[str, Any]) -> None:
        self._call(UPDATE_RECORD, record, record_id=record_id)

    def delete_record(self, record_id: str) -> None:
        self._call(DELETE_RECORD, record_id=record_id)

    def url(self, op: Operation, record_id: str = "") -> str:
        path = op.path.replace("{recordId}", "{id}").replace("{roleId}", "{id}")
        return self.api_url + path.replace("{id}", quote(record_id, safe=""))

    def _call(
        self, op: Operation, body: Any = None, *, record_id: str = "", query: dict[str, str] | None = None
    ) -> Any:
        """The JSON of an `ok` answer (None for `absent`); AdminError naming the fix for any other."""
        url = self.url(op, record_id) + ("?" + urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            # One attempt for a POST (a retried create could make two); reads and PUT are retried.
            budget = Budget(ATTEMPTS, self._timeout)
            answer = call_json(
                self._client, op.method, url, WORDING, budget, accepted=op.ok, payload=body, headers=headers
            )
        except CallFailed as exc:
            raise AdminError(exc.problem, exc.fix) from None
        if answer.status in op.absent:
            return None
        if answer.status not in op.ok:
            raise self._refused(op, url, answer.status)
        wrong = shapes.problem(answer.json, op.answer) if op.answer else None
        if wrong:  # a proxy or a login page answering JSON, say: never read further (AttributeError)
            raise AdminError(
                f"{quoted(self.url(op, record_id))} answered JSON that Authress does not send: {wrong}",
                WORDING.not_ours,
            )
        return answer.json

    def _refused(self, op: Operation, url: str, status: int) -> AdminError:
        where = f"Authress answered {status} to {op.method} {quoted(url)}"
        if status == 401:  # both about the account, not a record: the API URL, not the record's URL
            return AdminError(
                f"Authress answered 401 to {op.operation_id} at {quoted(self.api_url)}: the admin key is not valid",
                f"check that {self.who} has that key there (Authress -> Service clients), or create a new key",
            )
        if status == 403:
            return AdminError(
                f"Authress answered 403: {self.who} may not call {op.operation_id} at {quoted(self.api_url)}",
                "grant the service client admin permissions (Authress -> Access records), then run `setup --plan`",
            )
        if status == 400:
            return BodyRefused(f"{where}: it refused the request body", "check the values given to setup")
        if status in (409, 412):
            return Conflict(
                f"{where} (conflict): it changed while setup ran", "run `setup --plan` again to see it as it is now"
            )
        return AdminError(f"{where}, expected {'/'.join(map(str, op.ok))}", "check that --api-url is the Authress API")
