# Iterative (online) DPO: sample two answers per prompt from the current policy, label them with the judge, train DPO
# on them from that policy, and repeat. Included by examples/Makefile.
#
#   make -C examples iterative-dpo                      # ITERATIONS rounds from the SL-CAI model
#   make -C examples iterative-dpo ITERATIONS=4 DPO_START=$(OUT)/rl-cai
#   make -C examples out/dpo-2/summary.json             # up to iteration 2
#
# Iteration k has its own folder $(OUT)/dpo-k and starts from the model of iteration k-1 (iteration 1: DPO_START):
#   pairs.jsonl         two answers per prompt, sampled from that model with seed SEED + k (new samples every round)
#   prefs.jsonl         the judge's soft labels; prefs.summary.json: the judge's order agreement and bias
#   model/              the DPO-trained policy (a finished model once model/config.json exists)
#   summary.json        the iteration in one file: label agreement (both orders; each principle with the ensemble),
#                       judge bias (position, length), and how often the policy's own implicit reward already
#                       agreed with the judge's labels (trl's rewards/accuracies) at the first and last step
# Each is written atomically and resumes after a crash, so rerunning make after an interruption picks up where it
# stopped, inside an iteration too.

ITERATIONS ?= 2
DPO_START  ?= $(OUT)/sl-cai
DPO_N      ?= $(N)
DPO_FLAGS  ?= --beta 0.1
PYTHON     ?= $(if $(wildcard ../.venv/bin/python),$(abspath ../.venv/bin/python),python3)

dpo_model = $(if $(filter 0,$(1)),$(DPO_START),$(OUT)/dpo-$(1)/model)

# $(1): this iteration, $(2): the one before it
define DPO_ITERATION
$(OUT)/dpo-$(1)/pairs.jsonl: $(RED) $(call dpo_model,$(2))/config.json
	@mkdir -p $(OUT)/dpo-$(1)
	$(CAI) generate $$< --limit $(DPO_N) --n 2 --model $(call dpo_model,$(2)) --engine $(ENGINE) --max-tokens $(MAX_TOKENS) \
		--seed $(shell expr $(SEED) + $(1)) -o $$@
$(OUT)/dpo-$(1)/prefs.jsonl: $(OUT)/dpo-$(1)/pairs.jsonl
	$(CAI) label-prefs $$< --model $(JUDGE) --engine $(ENGINE) --constitution $(CONSTITUTION) --principles 2 --seed $(SEED) -o $$@
$(OUT)/dpo-$(1)/model/config.json: $(OUT)/dpo-$(1)/prefs.jsonl
	$(CAI) train-policy $$< -o $(OUT)/dpo-$(1)/model --algo dpo --model $(call dpo_model,$(2)) $(DPO_FLAGS) $(TRAIN)
$(OUT)/dpo-$(1)/summary.json: $(OUT)/dpo-$(1)/model/config.json
	$(PYTHON) iteration_summary.py $(OUT)/dpo-$(1) --iteration $(1) --start $(call dpo_model,$(2))
endef

$(foreach k,$(shell seq 1 $(ITERATIONS)),$(eval $(call DPO_ITERATION,$(k),$(shell expr $(k) - 1))))

.PHONY: iterative-dpo
iterative-dpo: $(foreach k,$(shell seq 1 $(ITERATIONS)),$(OUT)/dpo-$(k)/summary.json)
