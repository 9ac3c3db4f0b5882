"""The app stage: the Gradio app on ONNX Runtime (`app.ui`), its explanations, and Space building. Needs [app]."""

# Below this calibrated confidence the review tab says "not sure" (`sentiment app --min-confidence`).
MIN_CONFIDENCE = 0.8
