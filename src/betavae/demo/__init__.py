"""The interactive demonstration: trained models in the browser, with no Python behind the page.

``export`` writes a run's encoder and decoder as ONNX models (checked against PyTorch with
onnxruntime), ``site`` assembles the page, the models and ONNX Runtime Web into one folder,
``server`` serves that folder on 127.0.0.1, and ``vendor`` fetches the pinned ONNX Runtime
Web files once, on first use, into the user's cache, so that later demos never reach the internet.
"""
