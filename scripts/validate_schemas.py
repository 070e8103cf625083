"""Checks exported registry schemas with independent validators.

Usage: validate_schemas.py OPENAPI_DIR DRAFT4_DIR VALID.jsonl INVALID.jsonl

Every OpenAPI document must pass openapi-spec-validator; every Draft 4 document must be a
valid Draft 4 schema. Every event in VALID.jsonl must validate against its type's schema in
both formats, and every event in INVALID.jsonl must be rejected by both. Prints one line per
check and exits 1 on the first disagreement.
"""

import json
import pathlib
import sys

import jsonschema
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec


def load(path):
    return json.loads(pathlib.Path(path).read_text())


def main(openapi_dir, draft4_dir, valid_path, invalid_path):
    openapi = {p.stem: load(p) for p in sorted(pathlib.Path(openapi_dir).glob("*.json"))}
    draft4 = {p.stem: load(p) for p in sorted(pathlib.Path(draft4_dir).glob("*.json"))}
    if not openapi or set(openapi) != set(draft4):
        print(f"schema sets differ or are empty: {sorted(openapi)} vs {sorted(draft4)}")
        return 1
    for name, document in openapi.items():
        validate_spec(document)
        print(f"openapi3 {name}: valid OpenAPI document")
    for name, document in draft4.items():
        jsonschema.Draft4Validator.check_schema(document)
        print(f"draft4 {name}: valid Draft 4 schema")

    def validators(detail_type):
        document = openapi[detail_type]
        # Resolve `#/components/schemas/...` references against the whole document.
        envelope = dict(document["components"]["schemas"]["AWSEvent"])
        envelope["components"] = document["components"]
        return [
            ("openapi3", OAS30Validator(envelope, format_checker=OAS30Validator.FORMAT_CHECKER)),
            ("draft4", jsonschema.Draft4Validator(
                draft4[detail_type], format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)),
        ]

    for path, expect_valid in ((valid_path, True), (invalid_path, False)):
        # split("\n"), not splitlines(): that also breaks at U+0085 and U+2028 inside a
        # JSON string.
        for line_no, line in enumerate(pathlib.Path(path).read_text().split("\n"), 1):
            if not line.strip():
                continue
            event = json.loads(line)
            for dialect, validator in validators(event["detail-type"]):
                errors = list(validator.iter_errors(event))
                if bool(errors) == expect_valid:
                    print(f"{path}:{line_no}: {dialect}: expected "
                          f"{'valid' if expect_valid else 'invalid'}, got {errors[:1]}")
                    return 1
                print(f"{path}:{line_no}: {dialect}: {'valid' if expect_valid else 'rejected'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
