"""Transforms a SAM template into plain CloudFormation, offline, with aws-sam-translator.

Usage: sam_transform.py TEMPLATE.yaml OUT.json

cfn-lint on the SAM template cannot see inside AWS::Serverless::Function (the roles,
policies and event source mappings SAM generates); linting the transformed template can.
"""

import json
import os
import sys

# The translator asks boto3 for a region; no credentials or network are used.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    """Resolves managed policy names without calling IAM: none of ours are names."""

    def load(self):
        return {}


def main(template_path, out_path):
    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # What `sam package` does: local code folders become S3 locations.
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = f"s3://eventfork-artifacts/{name}.zip"
    parameters = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
    cloudformation = transform(template, parameters, OfflinePolicyLoader())
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(cloudformation, f, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
