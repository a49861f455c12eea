"""`make fidelity`: the live serving harness and the prediction it is compared with."""

from __future__ import annotations

import numpy as np
import pytest

from calibrate.fidelity import LiveServer, predict


def test_prediction_at_light_load_is_transport_plus_service():
    service, transport = np.full(200, 2.0), np.full(200, 0.5)
    for ordered in (False, True):
        predicted = predict(service, transport, rate_rps=1.0, requests=2000, replications=3, ordered=ordered)
        assert predicted["p50"]["ms"] == pytest.approx(2.5)  # queueing at 0.2% utilisation is rare


def test_live_server_reports_service_times_inside_each_latency():
    pytest.importorskip("onnxruntime")
    from calibrate.networks import build_mlp

    server = LiveServer(build_mlp(hidden=(64,)), warmup=5)
    try:
        service, transport = server.calibrate(20)
        latency, lateness, busy = server.serve(rate_rps=200.0, n=50, rng=np.random.default_rng(0))
    finally:
        server.close()
    assert (service > 0).all() and (transport >= 0).all()
    assert len(busy) == 50 and (latency >= busy).all()  # served in send order: request i is the i-th served
    assert (lateness > -1e-6).all()
