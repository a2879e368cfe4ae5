# crosscam: `make demo` runs the bundled two-camera demo, `make test` runs lint, types and tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest slow bench gpu-bench clean rtsp-deps reid-results boxmot-venv

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3.x'"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python run.py --streams configs/demo.yaml

test: $(STAMP) rtsp-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or gpu" --run-slow

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt -c constraints.txt
	touch $(BENCH_STAMP)

# BoxMOT for the peer benchmark, in its own venv (it pins opencv-python < 5); it sees .venv's
# packages (torch, ultralytics, crosscam) after its own through a .pth file.
BOXMOT_VENV := .venv-boxmot
BOXMOT_STAMP := $(BOXMOT_VENV)/.installed

$(BOXMOT_STAMP): $(STAMP) requirements-boxmot.txt
	$(BIN)/python -m venv $(BOXMOT_VENV)
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
		"$$($(BOXMOT_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_crosscam_venv.pth"
	$(BOXMOT_VENV)/bin/python -m pip install --quiet -r requirements-boxmot.txt
	touch $(BOXMOT_STAMP)

boxmot-venv: $(BOXMOT_STAMP)

# Benchmarks: peers side by side, scaling with streams (fast and realtime), then the README
# "Performance" section from the results under benchmarks/results/<host name>/.
bench: $(BENCH_STAMP) $(BOXMOT_STAMP)
	YOLO_OFFLINE=1 $(BIN)/python -m benchmarks.peers --streams benchmarks/configs/terrace1.yaml \
		--gt benchmarks/ground_truth/terrace1.json --start 40 --duration 30 --repeats 3 \
		--encoders drsta=assets/weights/drsta_osnet_mined.pt --boxmot
	YOLO_OFFLINE=1 $(BIN)/python -m benchmarks.pipeline --streams configs/demo.yaml \
		--streams-count 1,2,4 --duration 10 --mode fast --repeats 3
	YOLO_OFFLINE=1 $(BIN)/python -m benchmarks.pipeline --streams configs/demo.yaml \
		--streams-count 1,2 --duration 10 --mode realtime --repeats 3
	$(BIN)/python -m benchmarks.performance_readme

# On a machine with an NVIDIA GPU: the GPU tests, the encoder per backend and precision, the
# pipeline scaling with streams, and how many 1080p 30 fps streams the GPU carries within a
# frame->identity p99 of 100 ms (CPU decode vs NVDEC). Results under benchmarks/results/<host>/.
gpu-bench: $(BENCH_STAMP)
	$(BIN)/python -m pytest -q -m gpu --run-slow
	$(BIN)/python -m benchmarks.encoder --device cuda
	YOLO_OFFLINE=1 $(BIN)/python -m benchmarks.pipeline --streams configs/demo.yaml --device cuda \
		--streams-count 1,4,8,16 --duration 10 --mode fast --repeats 3
	YOLO_OFFLINE=1 $(BIN)/python -m benchmarks.gpu_profile --streams configs/demo.yaml \
		--device cuda --resolution 1920x1080 --fps 30 --decoders opencv,nvdec

# ReID encoders end to end (reid_models/RESULTS.md): mine tracklets from the bundled videos with
# the pipeline's detector and tracker; train RRU+STIM and DRSTA on them as residual heads that
# start as TP (frozen OSNet trunk), step by step for the ablation and its learning curves
# (reid_models/learning_curves.png), the last step being the shipped encoders; evaluate TP and
# both against the terrace1 ground truth. About 8 minutes on an idle 2-core VM, 40 on a busy one (RESULTS.md).
MINED := runs/mined/bundled/index.json
$(MINED): $(STAMP)
	rm -rf runs/mined/bundled
	YOLO_OFFLINE=1 $(BIN)/python -m training.mine --streams configs/train/mine_bundled.yaml \
		--out runs/mined/bundled --gt benchmarks/ground_truth/terrace1.json

reid-results: $(MINED)
	rm -rf runs/train/rru_stim_mined runs/train/drsta_mined runs/ablation
	$(BIN)/python -m training.ablation --config configs/train/rru_stim_mined.yaml \
		--config configs/train/drsta_mined.yaml --out reid_models/RESULTS.md
	$(BIN)/python -m reid_models.evaluate --index $(MINED) --encoder tp \
		--encoder assets/weights/rru_stim_osnet_mined.pt \
		--encoder assets/weights/drsta_osnet_mined.pt --out reid_models/RESULTS.md

# The RTSP test server (tests/rtsp_server.py): ffmpeg publishing into GStreamer's RTSP server,
# from Debian packages (~20 s, once); installed only when missing; elsewhere those tests skip.
RTSP_PACKAGES := ffmpeg gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
	gstreamer1.0-plugins-good
RTSP_PROBE := import gi; gi.require_version('GstRtspServer', '1.0'); \
	from gi.repository import GstRtspServer

rtsp-deps:
	@if command -v ffmpeg >/dev/null && /usr/bin/python3 -c "$(RTSP_PROBE)" 2>/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing the RTSP test server: $(RTSP_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(RTSP_PACKAGES) >/dev/null; \
	else echo "note: RTSP tests are skipped; install (Debian/Ubuntu): $(RTSP_PACKAGES)"; fi

clean:
	rm -rf $(VENV) $(BOXMOT_VENV) runs .pytest_cache .mypy_cache .ruff_cache
