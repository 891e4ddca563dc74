-- Every query on user_goal_progress names the user, and a player holds at most a few hundred rows, so the primary
-- key (user_id, goal_id) serves them all; these two secondary indexes only tripled the index writes of each
-- assignment (a new player inserts ~50 rows) (and, on PostgreSQL, kept is_active updates from being HOT).
DROP INDEX IF EXISTS user_goal_progress_user_challenge_idx;
DROP INDEX IF EXISTS user_goal_progress_user_active_idx;
