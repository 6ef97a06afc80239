"""What every command-line test checks of a bad input: exit 1, one 'Error: ...' line, no traceback."""

from __future__ import annotations


def one_line_error(result) -> str:
    """The single error line of a click ``Result`` that must have failed on bad input."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]
