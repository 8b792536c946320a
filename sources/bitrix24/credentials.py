"""How the source reaches a portal, as typed dlt credentials: an inbound webhook *or* an OAuth app. Both are
read flat from the source's section (``SOURCES__BITRIX24__WEBHOOK_URL``, ``[sources.bitrix24] webhook_url``),
so a missing setting names every place dlt looked (see ``sources.common.resolve_credentials``)."""

from __future__ import annotations

from typing import ClassVar, Union

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue

DEFAULT_TOKEN_URL = "https://oauth.bitrix24.tech/oauth/token/"


@configspec
class Bitrix24WebhookCredentials(CredentialsConfiguration):
    """An inbound webhook ``https://PORTAL/rest/USER_ID/SECRET/`` with the crm scope: the URL is the secret."""

    webhook_url: TSecretStrValue = None
    # no section of their own: the fields sit in the source's ([sources.bitrix24]), not under "credentials"
    __section__: ClassVar[str] = None


@configspec
class Bitrix24OAuthCredentials(CredentialsConfiguration):
    """A local or market OAuth app installed on the portal (crm scope). The refresh token rotates on every use;
    the rotated one is kept in the token store, so this one is only read until the first refresh."""

    portal_url: str = None
    client_id: str = None
    client_secret: TSecretStrValue = None
    refresh_token: TSecretStrValue = None
    oauth_token_url: str = DEFAULT_TOKEN_URL
    __section__: ClassVar[str] = None


Bitrix24Credentials = Union[Bitrix24WebhookCredentials, Bitrix24OAuthCredentials]  # noqa: UP007
KINDS = (Bitrix24WebhookCredentials, Bitrix24OAuthCredentials)  # the webhook wins when both are configured
