"""Outgoing mail over SMTP (the worker's email jobs). A failure raises, so
the job is retried with backoff; nothing here waits on a request."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from .config import Settings


def send(settings: Settings, to: str, subject: str, body: str) -> None:
    if not settings.smtp_host:
        raise RuntimeError("SMTP_HOST is not set: no mail can be sent")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_tls == "ssl":
        context = ssl.create_default_context()
        host, port = settings.smtp_host, settings.smtp_port
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


def verification_email(link: str, expires_at: str) -> tuple[str, str]:
    body = (
        "Someone signed up for OX Predict with this email address.\n\n"
        f"If it was you, open this link and confirm (valid until {expires_at}):\n\n{link}\n\n"
        "If it was not you, do not confirm: ignore this email. Nobody can link your\n"
        "Google account to an account whose email was never confirmed.\n"
    )
    return "Confirm your email for OX Predict", body
