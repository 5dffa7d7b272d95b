"""The Gradio chat app (`yollava_agent.ui`).

Shipped inside the wheel as `yollava_agent.ui`. The app arrives with the UI issue; until then the
main job is the terminal chat, `yollava chat`.
"""
