"""The app stage: the Gradio app on ONNX Runtime (`app.ui`), its explanations, and Space building. Needs [app]."""
