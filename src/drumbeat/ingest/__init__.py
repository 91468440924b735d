"""Where users and events enter Drumbeat: validation of identify/track calls and file imports."""
