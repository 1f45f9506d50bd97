"""Developer tools (not imported by the package): notebook stripping and building.

    python -m ocrviz.tools.strip_notebooks notebooks          # clear outputs in place
    python -m ocrviz.tools.strip_notebooks --check notebooks  # exit 1 if any has outputs
"""
