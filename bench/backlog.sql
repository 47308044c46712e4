-- bench.backlog(): the backlog of bench/worker.sh and bench/ab_backlog.sh
-- (psql -f bench/backlog.sql, in a database with the extension and a
-- schema bench)

/*
 * Queues orders first..last in one transaction as a merchant's batch would,
 * wakes the worker with enqueue(first) at commit, then polls every 50 ms
 * until no order is left that is not uploaded (or every order left is
 * rejected/dead/held, or timeout_s).  Seconds from the return of COMMIT.
 */
CREATE PROCEDURE bench.backlog(first bigint, last bigint, timeout_s float8,
	INOUT seconds float8 DEFAULT NULL, INOUT left_over bigint DEFAULT NULL,
	INOUT stuck bigint DEFAULT NULL, INOUT t0_epoch float8 DEFAULT NULL,
	INOUT wal0 pg_lsn DEFAULT NULL, INOUT wal1 pg_lsn DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	t1 timestamptz;
BEGIN
	INSERT INTO shopping_upload.order_state AS s (order_id)
	SELECT order_id FROM shopping_upload.orders WHERE order_id BETWEEN first AND last
	ON CONFLICT (order_id) DO UPDATE SET state = 'pending',
		version = s.version + 1, attempts = 0, next_attempt_at = now(),
		queued_at = now(), updated_at = now();
	-- 1.2 on: their due hints, as the queue writes them (the insert above,
	-- not the queue's own, made the worker's marker go: it is put back)
	IF to_regclass('shopping_upload.due') IS NOT NULL THEN
		EXECUTE 'INSERT INTO shopping_upload.due AS h (kind, order_id, at)'
			' SELECT ''o'', order_id, now() FROM shopping_upload.orders WHERE order_id BETWEEN $1 AND $2'
			' ON CONFLICT (kind, order_id) DO UPDATE SET at = EXCLUDED.at' USING first, last;
		EXECUTE 'INSERT INTO shopping_upload.due VALUES (''*'', 0, now()) ON CONFLICT DO NOTHING';
	END IF;
	PERFORM shopping_upload.enqueue(first);
	COMMIT;
	t0 := clock_timestamp();
	wal0 := pg_current_wal_insert_lsn();	-- part 1b: the worker's WAL from here
	LOOP
		SELECT count(*) FILTER (WHERE state <> 'uploaded'),
			   count(*) FILTER (WHERE state IN ('rejected', 'dead', 'held'))
		  INTO left_over, stuck
		  FROM shopping_upload.order_state;
		t1 := clock_timestamp();
		wal1 := pg_current_wal_insert_lsn();
		COMMIT;
		EXIT WHEN left_over = stuck OR t1 - t0 > make_interval(secs => timeout_s);
		PERFORM pg_sleep(0.05);
	END LOOP;
	seconds := extract(epoch FROM t1 - t0);
	t0_epoch := extract(epoch FROM t0);
END
$$;
