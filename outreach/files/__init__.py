"""Files kept in the database (uploads, error reports, exports), so any worker can read them."""
