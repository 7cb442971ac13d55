"""How every Kafka client of the project secures its connection: TLS and SASL (SCRAM) to the broker.

The shell makes one :class:`KafkaSecurity` from its ``YUJING_KAFKA_*`` settings
(``yujing/settings.py``, ``Settings.kafka_security``); each client takes what it needs from it:
:meth:`KafkaSecurity.client_options` gives the keyword arguments of kafka-python's producers,
consumers and admin clients, :meth:`KafkaSecurity.faust_options` Faust's ``broker_credentials``
(aiokafka underneath). Both build their TLS from the one :meth:`KafkaSecurity.ssl_context`, so the
worker and the tools trust the same CA and check host names alike. PLAINTEXT, the default, gives
no options at all: a client is then built exactly as before security existed.

kafka-python only logs why a connection failed and then times out ("Unable to bootstrap");
:func:`refusals_explained` turns a wrong password, an untrusted certificate or a listener that
speaks another protocol into one line that names the setting to fix.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.errors import (
    InvalidReceiveError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms both kafka-python and aiokafka speak with a user name and password.
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


class KafkaSecurityError(ValueError):
    """The security settings do not fit together or their files cannot be read (one line that
    names the ``YUJING_KAFKA_*`` variables to fix)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach the broker: ``protocol`` as Kafka names it (PLAINTEXT, SSL, SASL_PLAINTEXT,
    SASL_SSL), the SASL login, and the TLS files (``cafile`` unset: the system's CAs)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr, hence a log line
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"YUJING_KAFKA_SECURITY_PROTOCOL={self.protocol} is not one of {', '.join(PROTOCOLS)}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(
                    f"YUJING_KAFKA_SASL_MECHANISM={self.sasl_mechanism} is not one of {', '.join(SASL_MECHANISMS)}"
                )
            if not self.username or not self.password:
                raise KafkaSecurityError(
                    f"{self.protocol} needs YUJING_KAFKA_SASL_USERNAME and YUJING_KAFKA_SASL_PASSWORD"
                )
        # A CA or certificate set while the protocol stays plain is a half-done switch to TLS:
        # refuse it rather than silently connect unencrypted.
        if not self.uses_tls and (self.cafile or self.certfile or self.keyfile):
            raise KafkaSecurityError(
                f"YUJING_KAFKA_SSL_* files are set but YUJING_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                "uses no TLS (SSL or SASL_SSL)"
            )
        if self.keyfile and not self.certfile:
            raise KafkaSecurityError("YUJING_KAFKA_SSL_KEYFILE needs YUJING_KAFKA_SSL_CERTFILE")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def describe(self) -> str:
        """For log lines and messages: the protocol, mechanism and user, never the password.

        >>> KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "yujing", "s3cret").describe()
        'SASL_SSL (SCRAM-SHA-256 as yujing)'
        """
        return f"{self.protocol} ({self.sasl_mechanism} as {self.username})" if self.uses_sasl else self.protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client (None without TLS): verifies the broker against
        ``cafile`` and, unless turned off, its host name; presents ``certfile`` if set."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
            context.check_hostname = self.check_hostname  # the certificate itself is always verified
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(str(f) for f in (self.cafile, self.certfile, self.keyfile) if f)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise KafkaSecurityError(f"cannot load the TLS files ({files}): {reason}") from exc
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient.

        >>> KafkaSecurity().client_options()
        {}
        >>> sorted(KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "yujing", "pw").client_options().items())
        [('sasl_mechanism', 'SCRAM-SHA-512'), ('sasl_plain_password', 'pw'), ('sasl_plain_username', 'yujing'), ('security_protocol', 'SASL_PLAINTEXT')]
        """
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def faust_options(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App``: its ``broker_credentials`` (none for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        import faust  # only the worker pays for importing Faust

        context = self.ssl_context()
        if not self.uses_sasl:
            return {"broker_credentials": faust.SSLCredentials(context)}
        # Faust speaks SASL_SSL when given a context and SASL_PLAINTEXT without one.
        credentials = faust.SASLCredentials(
            username=self.username, password=self.password, mechanism=self.sasl_mechanism, ssl_context=context
        )
        return {"broker_credentials": credentials}


PLAINTEXT = KafkaSecurity()
"""No TLS, no SASL: the default of every client that is not given its settings' security."""


class KafkaRefused(KafkaConnectionError):
    """The broker answered but refused the connection (login, certificate, protocol); a
    kafka-python ``KafkaError``, so the callers' handlers still apply. Its text is one line."""

    def __str__(self) -> str:
        return str(self.args[0])  # without the class name kafka-python's errors put first


@contextmanager
def refusals_explained(bootstrap: str, security: KafkaSecurity) -> Iterator[None]:
    """Around the construction of a kafka-python client: when it gives up connecting, raise
    :class:`KafkaRefused` saying why if the broker refused it, else let the original error pass."""
    handler = _CauseCollector()
    # kafka-python's network layer logs each failed attempt with its exception as an argument.
    # Collect them without printing: the project keeps kafka-python's logs quiet (streams.clients).
    logger = logging.getLogger("kafka.net")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    except KafkaError as exc:
        reason = refusal_reason(bootstrap, security, handler.causes, answered=handler.answered)
        if reason is None:
            raise
        raise KafkaRefused(reason) from exc
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def refusal_reason(
    bootstrap: str, security: KafkaSecurity, causes: list[BaseException], *, answered: bool = False
) -> str | None:
    """One line on why the broker refused every attempt, from their ``causes`` (None: it never
    answered at all, or failed for another reason). ``answered``: a connection got the broker's
    ApiVersions answer (so TLS, if any, worked) before it was lost."""
    login = (f"the broker at {bootstrap} refused the {security.sasl_mechanism} login of user "
             f"{security.username!r}: check YUJING_KAFKA_SASL_USERNAME and YUJING_KAFKA_SASL_PASSWORD")
    for cause in reversed([link for caught in causes for link in _chain(caught)]):
        if isinstance(cause, SaslAuthenticationFailedError):
            return login
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"the TLS certificate of the broker at {bootstrap} is not trusted "
                    f"({cause.verify_message}): check YUJING_KAFKA_SSL_CAFILE and YUJING_KAFKA_SSL_CHECK_HOSTNAME")
        if isinstance(cause, ssl.SSLError):
            return (f"the TLS handshake with {bootstrap} failed ({cause.reason or cause}): does its "
                    f"listener speak {security.protocol}? (YUJING_KAFKA_SECURITY_PROTOCOL)")
        if isinstance(cause, InvalidReceiveError) and _is_tls_record(cause):
            return (f"the broker at {bootstrap} answered in TLS to a {security.protocol} client: set "
                    "YUJING_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL (and YUJING_KAFKA_SSL_CAFILE)")
    # Cut off on every attempt (the last cause is often the bootstrap's own timeout).
    attempts = [cause for cause in causes if not isinstance(cause, KafkaTimeoutError)]
    if not attempts or not all("disconnected" in str(cause) for cause in attempts):
        return None
    if answered and security.uses_sasl:
        # Between the ApiVersions answer and the first request there is only the SASL login. The
        # broker sends its refusal and hangs up at once, and kafka-python 3.0 may drop a response
        # that arrives with the hang-up, so the hang-up is all it reports.
        return login
    # A listener expecting TLS or a SASL login hangs up on a client that sends neither.
    return (f"the broker at {bootstrap} closed every {security.protocol} connection: does its "
            f"listener speak {security.protocol}? (YUJING_KAFKA_SECURITY_PROTOCOL)")


def _is_tls_record(error: InvalidReceiveError) -> bool:
    """Whether the "frame length" kafka-python could not read is the start of a TLS record (content
    type 20-23, version 3.x): the broker's TLS alert, read as if it were a Kafka response."""
    found = re.search(r"length: (\d+)", str(error))
    length = int(found[1]) if found else 0
    return 20 <= length >> 24 <= 23 and (length >> 16) & 0xFF == 3


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from (kafka-python may wrap an ``ssl.SSLError``)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


class _CauseCollector(logging.Handler):
    """Keeps the exceptions kafka-python logs, and whether a lost connection had its broker's
    ApiVersions answer (its ``broker_version``, logged with it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.causes: list[BaseException] = []
        self.answered = False

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.causes.extend(arg for arg in args if isinstance(arg, BaseException))
        self.answered = self.answered or any(getattr(arg, "broker_version", None) for arg in args)
