"""The ``MySQLServer`` block: how to reach a MySQL/MariaDB server."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from mysqlops.model import ServerSpec, TLSOptions


class MySQLServer(Block):
    """Connection settings of one MySQL or MariaDB server.

    Load it in a flow or a notebook::

        from blocks import MySQLServer
        server = MySQLServer.load("prod-primary")          # in a flow / script
        server = await MySQLServer.aload("prod-primary")   # in a notebook (async)
        spec = server.to_spec()                            # the core value object

    The password is a secret: it is shown masked in the UI and never written to logs,
    manifests or child-process argv/environment (clients get it through a 0600 option file).
    """

    _block_type_name = "MySQL Server"
    _block_type_slug = "mysqlops-mysql-server"
    _logo_url = None
    _description = "A MySQL/MariaDB server that mysqlops backs up, provisions or restores into."

    host: str = Field(default="127.0.0.1", description="Host name or IP address of the server.")
    port: int = Field(default=3306, ge=1, le=65535, description="TCP port of the server.")
    socket: str | None = Field(
        default=None, description="Unix socket path; used instead of host/port when set."
    )
    user: str = Field(default="mysqlops_backup", description="Login user (least privilege: see README).")
    password: SecretStr | None = Field(default=None, description="Password of the user.")
    server_name: str | None = Field(
        default=None,
        description="Name used in backup paths and reports (letters, digits, _ . -). "
        "Defaults to this block's name.",
    )
    tls_ca: str | None = Field(default=None, description="Path of the CA certificate; enables TLS.")
    tls_cert: str | None = Field(default=None, description="Path of the client certificate (optional).")
    tls_key: str | None = Field(default=None, description="Path of the client key (optional).")
    tls_verify: bool = Field(default=True, description="Verify the server certificate against tls_ca.")
    description: str = Field(default="", description="Free text shown in reports.")

    def to_spec(self, name: str | None = None) -> ServerSpec:
        """The core :class:`ServerSpec` (validated: a bad value raises ConfigError)."""
        tls = None
        if self.tls_ca or self.tls_cert:
            tls = TLSOptions(
                ca=self.tls_ca, cert=self.tls_cert, key=self.tls_key, verify_cert=self.tls_verify
            )
        return ServerSpec(
            name=name or self.server_name or _document_name(self) or "server",
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password.get_secret_value() if self.password else None,
            socket=self.socket,
            tls=tls,
            description=self.description,
        )

    @classmethod
    def from_spec(cls, spec: ServerSpec) -> MySQLServer:
        return cls(
            host=spec.host,
            port=spec.port,
            socket=spec.socket,
            user=spec.user,
            password=SecretStr(spec.password) if spec.password is not None else None,
            server_name=spec.name,
            tls_ca=spec.tls.ca if spec.tls else None,
            tls_cert=spec.tls.cert if spec.tls else None,
            tls_key=spec.tls.key if spec.tls else None,
            tls_verify=spec.tls.verify_cert if spec.tls else True,
            description=spec.description,
        )


def _document_name(block: Any) -> str | None:
    return getattr(block, "_block_document_name", None)
