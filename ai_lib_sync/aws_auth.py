"""AWS Signature Version 4 for manifests whose ``auth.type`` is ``aws_sigv4`` (Amazon Bedrock).

botocore does the signing and the credential lookup, so we behave exactly like boto3: the
standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, then
``AWS_PROFILE`` and the shared files, SSO, ``credential_process``, container and instance
roles). botocore is an optional extra (``pip install ai-lib-sync[aws]``), imported only here
and only when a client actually signs; a Bedrock API key (bearer) needs none of this.

The signer signs the exact bytes, URL and headers the transport sends, so the canonical URI
is derived from the same percent-encoded path (``%3A`` for the ``:`` of model ids, encoded once
more in the canonical request as SigV4 requires for every service but S3).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

INSTALL_HINT = "pip install 'ai-lib-sync[aws]'"
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
_SIGNATURE_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token")
# bedrock-runtime.us-east-1.amazonaws.com, bedrock-runtime-fips.us-gov-west-1..., VPC endpoints
# (vpce-123.bedrock-runtime.eu-west-1.vpce.amazonaws.com), China (...amazonaws.com.cn).
_HOST_REGION = re.compile(r"(?:^|\.)[a-z0-9-]+\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$")


def _botocore() -> Any:
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.exceptions
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            "AWS SigV4 signing needs botocore: run " + INSTALL_HINT + ", or use a Bedrock API key "
            "(set AWS_BEARER_TOKEN_BEDROCK or pass api_key=...)"
        ) from None
    return botocore


def profile_region(environ: Mapping[str, str]) -> str | None:
    """The region of the active AWS profile (``AWS_PROFILE`` or default), or None.

    Named by the Bedrock manifest as the resolver of its ``{region}`` endpoint variable, so a
    region set with ``aws configure`` works as it does in boto3. Never raises.
    """
    try:
        import botocore.exceptions
        import botocore.session
    except ImportError:
        return None
    try:
        session = botocore.session.Session(profile=environ.get("AWS_PROFILE") or None)
        return session.get_config_variable("region") or None
    except botocore.exceptions.BotoCoreError:
        return None


def signing_region(manifest: Any, base_url: str, environ: Mapping[str, str]) -> str:
    """The region in the endpoint's host name wins (the signature must match the endpoint);
    a custom base URL (proxy, VPC alias, test server) falls back to the usual AWS settings."""
    host = (urlsplit(base_url).hostname or "").lower()
    match = _HOST_REGION.search(host)
    if match:
        return match.group(1)
    spec = manifest.endpoint.get("variables", {}).get("region", {})
    for name in spec.get("env", REGION_ENV):
        if environ.get(name):
            return environ[name]
    region = profile_region(environ) or spec.get("default")
    if not region:
        raise ConfigurationError(
            f"{manifest.id}: cannot tell which AWS region to sign for with base_url {base_url!r}; "
            f"set {' or '.join(spec.get('env', REGION_ENV))}, or a region in your AWS profile"
        )
    return region


def _credentials(botocore: Any, manifest: Any, environ: Mapping[str, str]) -> Any:
    access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:  # the first link of the chain, read from the given environment
        token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
        return botocore.credentials.Credentials(access_key, secret_key, token, method="env")
    try:
        session = botocore.session.Session(profile=environ.get("AWS_PROFILE") or None)
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigurationError(f"{manifest.id}: AWS credentials could not be loaded: {exc}") from None
    if credentials is None:
        bearer = ", ".join(manifest.auth.get("bearer_env", ()))
        raise ConfigurationError(
            f"no credentials for {manifest.id}: pass api_key=... or set {bearer or 'a bearer key'} "
            "(an API key), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure an AWS "
            "profile (AWS_PROFILE, ~/.aws/credentials, SSO)"
        )
    return credentials


class _RedactSessionToken(logging.Filter):
    """botocore logs the canonical request at DEBUG, session-token header included."""

    _TOKEN = re.compile(r"(?i)(x-amz-security-token:)[^\n]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


def _install_log_filter() -> None:
    auth_logger = logging.getLogger("botocore.auth")
    if not any(isinstance(item, _RedactSessionToken) for item in auth_logger.filters):
        auth_logger.addFilter(_RedactSessionToken())


def make_signer(manifest: Any, base_url: str, environ: Mapping[str, str]) -> Callable[[Any], None]:
    """A function that signs a ``transport.Prepared`` in place (``Authorization``,
    ``X-Amz-Date`` and, with temporary credentials, ``X-Amz-Security-Token``).

    Credentials and region are resolved now, so a missing one fails at client construction;
    refreshable credentials (SSO, assumed roles) are re-read at every signature, and every
    attempt, retries included, gets a fresh timestamp.
    """
    botocore = _botocore()
    credentials = _credentials(botocore, manifest, environ)
    region = signing_region(manifest, base_url, environ)
    service = manifest.auth.get("service") or "bedrock"
    _install_log_filter()

    def sign(prepared: Any) -> None:
        frozen = credentials.get_frozen_credentials()
        headers = {name: value for name, value in prepared.headers.items()
                   if name.lower() not in _SIGNATURE_HEADERS}
        request = botocore.awsrequest.AWSRequest(method=prepared.method, url=prepared.url,
                                                 data=prepared.body or b"", headers=headers)
        botocore.auth.SigV4Auth(frozen, service, region).add_auth(request)
        for name in _SIGNATURE_HEADERS:
            value = request.headers.get(name)
            if value:
                headers[name.title()] = value
        prepared.headers = headers
        if frozen.token and frozen.token not in prepared.secrets:
            prepared.secrets = (*prepared.secrets, frozen.token)

    sign.region = region  # type: ignore[attr-defined]  # for diagnostics and tests
    return sign
