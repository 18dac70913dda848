"""Static mistakes in an ACTJob: each is refused alike by pydantic (`actjob validate`, `actjob run`)
and by the API server (the CRD's CEL twins, `kubectl apply`). One table, used by both test suites.

A case: (id, spec sections that replace the base spec's, strings every refusal must contain).
The base spec is valid and cluster-ready (an s3:// storage root).
"""

from __future__ import annotations

BASE = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
        "storage": {"root": "s3://bucket/act"}}

SW, ALF, TWX = "scienceworld", "alfworld", "textworld-express"

CASES = [
    # environment facts (contract.ENV_FACTS)
    ("scienceworld unknown task", {"environment": {"name": SW, "tasks": ["boil", "boill"]}},
     ["environment.tasks", "unknown ScienceWorld task", "find-living-thing"]),
    ("alfworld unknown task type", {"environment": {"name": ALF, "tasks": ["pick_and_eat"]},
                                    "stages": {"eval": {"splits": ["valid_seen"]}}},
     ["environment.tasks", "unknown ALFWorld task", "pick_two_obj_and_place"]),
    ("alfworld task id out of range", {"environment": {"name": ALF, "tasks": ["7"]},
                                       "stages": {"eval": {"splits": ["valid_seen"]}}},
     ["environment.tasks", "unknown ALFWorld task", "1, 2, 3"]),
    ("textworld-express unknown game", {"environment": {"name": TWX, "game": "zork"}},
     ["environment.game", "unknown TextWorldExpress game", "cookingworld"]),
    ("textworld-express tasks other than its game", {"environment": {"name": TWX, "game": "twc", "tasks": ["coin"]}},
     ["environment.tasks", "plays one game", "environment.game"]),
    ("game on an environment without games", {"environment": {"name": SW, "game": "twc"}},
     ["environment.game", "textworld-express only"]),
    ("webshop tasks", {"environment": {"name": "webshop", "url": "http://shop:3000", "tasks": ["shoes"]}},
     ["environment.tasks", "WebShop has no task names"]),
    ("unknown expert split", {"environment": {"name": ALF, "expert": {"split": "dev"}},
                              "stages": {"eval": {"splits": ["valid_seen"]}}},
     ["environment.expert.split", "unknown ALFWorld split", "valid_seen"]),
    ("unknown eval split (scienceworld valid_unknown)", {"stages": {"eval": {"splits": ["dev", "valid_unknown"]}}},
     ["stages.eval.splits", "unknown ScienceWorld split", "train, dev, test"]),
    ("alfworld with the default eval split dev", {"environment": {"name": ALF}},
     ["stages.eval.splits", "unknown ALFWorld split", "valid_unseen"]),
    ("too many tasks", {"environment": {"name": SW, "tasks": ["boil"] * 65}},
     ["environment.tasks", "65"]),
    # Early Experience judges learn from recorded outcomes, which only replaying environments give
    ("world-model judge without recorded outcomes", {"stages": {"judge": {"method": "iwm"}}},
     ["stages.judge.method", "stages.collect.recordOutcomes: true"]),
    ("recorded outcomes on webshop", {"environment": {"name": "webshop", "url": "http://shop:3000"},
                                      "stages": {"collect": {"recordOutcomes": True}}},
     ["stages.collect.recordOutcomes", "WebShop cannot restore expert states", "off for it"]),
    # secrets stay out of specs
    # (the Kubernetes list form, which the CRD types; the map form is refused alike by pydantic alone)
    ("S3 secret key in pod env", {"pod": {"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"},
                                                  {"name": "NCCL_DEBUG", "value": "INFO"}]}},
     ["spec.pod.env", "must not carry credentials", "spec.storage.s3.credentialsSecret"]),
    ("HF token in pod env", {"pod": {"env": [{"name": "HF_TOKEN", "value": "hf_abc"}]}},
     ["spec.pod.env", "must not carry credentials", "secretKeyRef", "spec.tracking.credentialsSecret"]),
    ("MLflow token from a ConfigMap", {"pod": {"env": [{"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {
        "configMapKeyRef": {"name": "cm", "key": "t"}}}]}},
     ["spec.pod.env", "must not carry credentials"]),
]

# Refused by the API server only: `actjob run` resolves a relative file:// root against its working directory.
CLUSTER_ONLY = [
    ("relative file:// root on a cluster", {"storage": {"root": "file://.act/storage"}},
     ["spec.storage.root", "relative file:// root", "s3://"]),
    ("no storage root on a cluster", {"storage": {"s3": {"endpoint": "http://minio:9000"}}},
     ["storage.root is required on a cluster"]),
]

# Accepted by both: the facts' other spellings and the rules' edges.
VALID = [
    ("scienceworld task ids", {"environment": {"name": SW, "tasks": ["1-1", "find-animal"]},
                               "stages": {"eval": {"splits": ["dev", "test"]}}}),
    ("alfworld type ids and its splits", {"environment": {"name": ALF, "tasks": ["1", "pick_two_obj_and_place"],
                                                          "expert": {"split": "valid_train"}},
                                          "stages": {"eval": {"splits": ["valid_seen", "valid_unseen"]}}}),
    ("alfworld eval disabled keeps the default split", {"environment": {"name": ALF},
                                                        "stages": {"eval": {"enabled": False}}}),
    ("textworld-express tasks naming its game", {"environment": {"name": TWX, "game": "coin", "tasks": ["coin"]}}),
    ("textworld-express default game", {"environment": {"name": TWX, "tasks": ["twc"]}}),
    ("self-reflection judge: outcomes recorded, no GRPO batch rule", {
        "environment": {"name": TWX}, "stages": {"collect": {"recordOutcomes": True},
                                                 "judge": {"method": "sr", "batchSize": 3}}}),
    ("world-model judge on reused pairs", {"stages": {"collect": {"enabled": False, "reuse": "s3://b/pairs"},
                                                      "judge": {"method": "iwm"}}}),
    ("absolute file:// root, harmless pod env", {"storage": {"root": "file:///data/act"},
                                                 "pod": {"env": [{"name": "NCCL_SOCKET_IFNAME", "value": "eth0"}]}}),
    ("HF token from a Secret", {"pod": {"env": [{"name": "HF_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "hf", "key": "token"}}}]}}),
]


def spec(overrides: dict) -> dict:
    return {**BASE, **overrides}
