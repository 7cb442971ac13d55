"""Alert policy: from scores to warning levels and transitions, and the warning records."""
