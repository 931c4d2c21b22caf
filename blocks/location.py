"""The ``BackupLocation`` block: where backups are stored (any fsspec URL)."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.server import _document_name
from mysqlops.model import Location


class BackupLocation(Block):
    """A place backups are written to: local disk, S3 (through s3fs) or any fsspec URL.

    Examples::

        BackupLocation(url="file:///var/backups/mysql").save("local")
        BackupLocation(url="s3://acme-backups/mysql", key=..., secret=..., offsite=True).save("s3")
        location = BackupLocation.load("s3").to_location()
        location = (await BackupLocation.aload("s3")).to_location()   # in a notebook

    Keys are secrets (masked in the UI, never logged). ``endpoint_url`` points s3fs at a
    non-AWS endpoint (MinIO, Ceph, a test server).
    """

    _block_type_name = "Backup Location"
    _block_type_slug = "mysqlops-backup-location"
    _logo_url = None
    _description = "A storage location for mysqlops backups (file://, s3://, any fsspec URL)."

    url: str = Field(description="fsspec URL, e.g. file:///var/backups/mysql or s3://bucket/prefix.")
    location_name: str | None = Field(
        default=None, description="Name used in manifests and reports; defaults to this block's name."
    )
    key: SecretStr | None = Field(default=None, description="Access key id (S3-compatible storage).")
    secret: SecretStr | None = Field(default=None, description="Secret access key (S3-compatible storage).")
    token: SecretStr | None = Field(default=None, description="Session token, if any.")
    endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint URL (MinIO, Ceph, ...).")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec options (non-secret), passed unchanged."
    )
    offsite: bool = Field(default=False, description="Counts as the off-site copy of the 3-2-1 rule.")
    description: str = Field(default="", description="Free text shown in reports.")

    def to_location(self, name: str | None = None) -> Location:
        options: dict[str, Any] = dict(self.storage_options)
        if self.key:
            options["key"] = self.key.get_secret_value()
        if self.secret:
            options["secret"] = self.secret.get_secret_value()
        if self.token:
            options["token"] = self.token.get_secret_value()
        if self.endpoint_url:
            options.setdefault("client_kwargs", {})["endpoint_url"] = self.endpoint_url
        return Location(
            name=name or self.location_name or _document_name(self) or "location",
            url=self.url,
            storage_options=options,
            offsite=self.offsite,
        )
