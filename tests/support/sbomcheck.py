"""The SBOM formats' own validators (test-only packages that tests/setup.sh
installs: spdx-tools, and cyclonedx-python-lib with the official CycloneDX
1.5 JSON schema), and Nix's name/version split table. Without the packages,
tests that validate are skipped."""

from __future__ import annotations

import pytest

# (store name, name, version) as builtins.parseDrvName splits them.
PARSE_DRV_NAME = [
    ("hello-2.12", "hello", "2.12"),
    ("glibc-2.37-8", "glibc", "2.37-8"),
    ("python3.11-requests-2.31.0", "python3.11-requests", "2.31.0"),
    ("nix-2.18.1-man", "nix", "2.18.1-man"),
    ("chain-b", "chain-b", ""),
    ("source", "source", ""),
    ("foo-", "foo-", ""),
    ("foo-_bar", "foo", "_bar"),
    ("gtk+3-3.24.41", "gtk+3", "3.24.41"),
    ("a-b-c-1", "a-b-c", "1"),
    ("xz-5.4.5-bin", "xz", "5.4.5-bin"),
    ("go-1.21-", "go", "1.21-"),
]


def spdx_validation_messages(data: bytes, tmp_path) -> list:
    pytest.importorskip("spdx_tools")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "doc.spdx.json"
    path.write_bytes(data)
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def cyclonedx_errors(data: bytes):
    pytest.importorskip("cyclonedx")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_5).validate_str(data.decode())
