"""How the source signs in, as typed dlt credentials: an API token *or* a CRM administrator's username and
password. Read flat from the source's section (``SOURCES__ONLYOFFICE__TOKEN``, ``[sources.onlyoffice] token``),
so a missing setting names every place dlt looked (see ``sources.common.resolve_credentials``)."""

from __future__ import annotations

from typing import ClassVar, Union

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue


@configspec
class OnlyofficeTokenCredentials(CredentialsConfiguration):
    """An API token, sent as the raw ``Authorization`` header."""

    token: TSecretStrValue = None
    # no section of their own: the fields sit in the source's ([sources.onlyoffice]), not under "credentials"
    __section__: ClassVar[str] = None


@configspec
class OnlyofficePasswordCredentials(CredentialsConfiguration):
    """A CRM administrator without two-factor authentication: a token is requested once per run (and again
    after a 401), kept in memory only."""

    username: str = None
    password: TSecretStrValue = None
    __section__: ClassVar[str] = None


OnlyofficeCredentials = Union[OnlyofficeTokenCredentials, OnlyofficePasswordCredentials]  # noqa: UP007
KINDS = (OnlyofficeTokenCredentials, OnlyofficePasswordCredentials)  # both may be set: the token is used first
