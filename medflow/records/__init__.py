"""Records context: patients and the master patient index, cases (exams) and their items,
versions, annotations, search, announcements."""
