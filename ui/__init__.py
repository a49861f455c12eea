"""The Streamlit planner's pieces under app.py: state, runs, knobs, views (DESIGN.md: sim/cli, ui/)."""
