"""Machinery shared by every driver, with no device knowledge. Private: free to change."""
