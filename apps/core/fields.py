"""Model fields stored encrypted at rest (see `apps.core.crypto`)."""

from __future__ import annotations

from typing import Any

from django.db import models

from . import crypto


class EncryptedTextField(models.BinaryField):
    """Free text kept as an AES-GCM blob; Python code only ever sees `str`.

    The column cannot be searched or ordered by: that is the point.
    """

    description = "Text encrypted at rest"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        return name, path, args, kwargs

    def get_default(self) -> Any:
        # BinaryField turns an empty default into b"", which would be stored unsealed.
        return models.Field.get_default(self)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return crypto.open_sealed(bytes(value)).decode()

    def to_python(self, value: Any) -> Any:
        if isinstance(value, (bytes, memoryview)):
            return crypto.open_sealed(bytes(value)).decode()
        return value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = crypto.seal(value.encode())
        return super().get_db_prep_value(value, connection, prepared)

    def value_to_string(self, obj: Any) -> str:
        return str(self.value_from_object(obj) or "")

    def formfield(self, **kwargs: Any) -> Any:  # type: ignore[override]
        from django import forms

        return forms.CharField(widget=forms.Textarea, **kwargs)
