"""newsetl."""
