# The background worker: queueing, retries, errcodes, crashes, signals.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SuStub;
use Digest::SHA;
use Encode;
use Time::HiRes ();

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);
my $stub2 = SuStub->start(dir => $dir, name => 'stub2');

my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.timeout = '5s'
shopping_upload.lease = '30s'
restart_after_crash = on
EOC

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub wait_for
{
	my ($query, $expected, $name) = @_;
	ok($node->poll_query_until('postgres', $query, $expected), $name);
}
sub worker_pid
{
	return sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'");
}
my $n = 0;
sub order_json
{
	my (%o) = @_;
	return SuStub::order_json(out_trade_no => sprintf('W%011d', ++$n), %o);
}
sub import_sql { my $j = order_json(@_); return "shopping_upload.import_order('$j')"; }
sub import_order { return sql('SELECT ' . import_sql(@_)); }
sub state_of { return sql("SELECT state FROM shopping_upload.order_status WHERE order_id = $_[0]"); }
sub reload
{
	my ($setting, $value) = @_;
	sql("ALTER SYSTEM SET $setting = '$value'");
	$node->reload;
}

# --- the worker runs, and shows itself
wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'shopping_upload%'",
	'2', 'the launcher and the worker run');
ok(worker_pid() =~ /^\d+$/, 'the worker shows in pg_stat_activity as "shopping_upload worker"');

# --- orders written are uploaded with no further call
my $id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'an imported order is uploaded by the worker');
is(scalar @{ $stub->requests('/user-order/orders') }, 1, 'one request reached the stand-in');
is(sql("SELECT via || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id"),
	'worker 0', 'the worker audited it');

# orders written by hand, several rows in one transaction: one job
sql("BEGIN;
	INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
		VALUES (5000, 2, '4200005000', 'o-1');
	INSERT INTO shopping_upload.sub_orders VALUES (5000, 0, 'm-5000', 'URL', 'https://shop.example.com/o/5000', NULL, NULL);
	INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, unit_price, quantity, image_url, link_type, link_url)
		SELECT 5000, 0, g, 'i-' || g, 'Tea ' || g, 100, 1, '{https://img.example.com/t.png}', 'URL', 'https://shop.example.com/i/1'
		FROM generate_series(0, 4) g;
	COMMIT;");
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = 5000", 'uploaded',
	'an order written with plain INSERTs is uploaded');
is(sql("SELECT version FROM shopping_upload.order_state WHERE order_id = 5000"), '1',
	'seven rows written in one transaction make one job (version 1)');

# a role with privileges on the order tables only: its orders are queued too
sql("CREATE ROLE clerk LOGIN;
	GRANT USAGE ON SCHEMA shopping_upload TO clerk;
	GRANT SELECT, INSERT, UPDATE, DELETE ON shopping_upload.orders,
		shopping_upload.sub_orders, shopping_upload.items TO clerk;");
$node->safe_psql('postgres', "INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
	VALUES (6000, 2, '4200006000', 'o-clerk')", extra_params => [ '-U', 'clerk' ]);
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.order_status WHERE order_id = 6000",
	'rejected 268485191', 'an order written by a role without rights on the queue is queued (and refused: no order_list)');
$node->safe_psql('postgres', 'DELETE FROM shopping_upload.orders WHERE order_id = 6000',
	extra_params => [ '-U', 'clerk' ]);
is(sql("SELECT count(*) FROM shopping_upload.order_state WHERE order_id = 6000"), '0',
	'deleting an order deletes its state');

# a change to an uploaded order queues it again, with a later upload_time
sql("UPDATE shopping_upload.items SET quantity = 2 WHERE order_id = 5000");
wait_for("SELECT state || ' ' || version || ' ' || uploaded_version FROM shopping_upload.order_state WHERE order_id = 5000",
	'uploaded 2 2', 'a changed order is uploaded again');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = 5000 AND errcode = 0"), '2',
	'two accepted uploads of it');
is(sql("SELECT max(upload_time::timestamptz) > min(upload_time::timestamptz) FROM shopping_upload.audit WHERE order_id = 5000"),
	't', 'the second with a later upload_time');

# --- a rolled back transaction queues nothing
$stub->reset;
sql("BEGIN; SELECT " . import_sql() . "; ROLLBACK;");
sql("BEGIN; SELECT " . import_sql() . "; SAVEPOINT a; SELECT " . import_sql() . "; ROLLBACK TO a; COMMIT;");
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'what was committed is uploaded');
is(scalar @{ $stub->requests('/user-order/orders') }, 1, 'and only that: rolled back orders are not sent');

# --- auto_upload off queues nothing; enqueue() queues by hand
my $quiet = sql("SET shopping_upload.auto_upload = off; SELECT " . import_sql());
is(state_of($quiet), '', 'with auto_upload off the order is not queued');
sql("SELECT shopping_upload.enqueue($quiet)");
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $quiet", 'uploaded',
	'enqueue() queues it by hand');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT shopping_upload.enqueue(987654)');
like($err, qr/order 987654 does not exist/, 'enqueue() of an unknown order says so');

# --- transient faults are retried until accepted, every attempt audited
$stub->reset;
$stub->fault(kind => 'errcode:-1', count => 2);
$stub->fault(kind => 'http500', count => 1);
$stub->fault(kind => 'notjson', count => 1);
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'an order is retried through -1, HTTP 500 and a body that is not JSON');
is(sql("SELECT string_agg(errcode::text || ':' || coalesce(http_status::text, '-'), ' ' ORDER BY audit_id)
		FROM shopping_upload.audit WHERE order_id = $id"),
	'-1:200 -1:200 -1:500 -1:200 0:200', 'each attempt is audited');

# --- what the audit keeps (shopping_upload.audit_request)
# (a reload, seen by a new session; the worker takes it at its next wakeup,
# which a short wait lets come before the next order)
sub audit_request
{
	reload('shopping_upload.audit_request', $_[0]);
	wait_for("SELECT current_setting('shopping_upload.audit_request')", $_[0], "audit_request = $_[0] is loaded");
	sql('SELECT pg_sleep(0.3)');
}
# failed (the default): an accepted row keeps the version, upload_time and
# the SHA-256 digest of the exact body sent; the failed ones keep the body
{
	my @req = grep { ($_->{errcode} // -2) == 0 } @{ $stub->requests('/user-order/orders') };
	my $body = $req[-1]{body};
	is(sql("SELECT current_setting('shopping_upload.audit_request')"), 'failed', 'audit_request is failed by default');
	is(sql("SELECT (request IS NULL)::text || ' ' || version || ' ' || (upload_time IS NOT NULL)::text
			|| ' ' || (queued_at <= created_at)::text || ' ' || encode(request_sha256, 'hex')
			FROM shopping_upload.audit WHERE order_id = $id AND errcode = 0"),
		"true 1 true true " . Digest::SHA::sha256_hex(Encode::encode_utf8($body)),
		'audit_request = failed: the accepted row keeps no body, but the version, upload_time, queued_at and the digest of the exact body the stand-in received');
	is(sql("SELECT count(*) FILTER (WHERE request IS NOT NULL) || '/' || count(*)
			|| ' ' || count(*) FILTER (WHERE request_sha256 IS NOT NULL)
			FROM shopping_upload.audit WHERE order_id = $id AND errcode <> 0"),
		'4/4 4', 'the attempts that were not accepted keep their body, and its digest');
	audit_request('all');
	my $all = import_order();
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $all", 'uploaded',
		'audit_request = all: the next order is uploaded');
	is(sql("SELECT (request IS NOT NULL)::text || ' ' || (request_sha256 IS NOT NULL)::text
			FROM shopping_upload.audit WHERE order_id = $all"), 'true true',
		'and its accepted row keeps the body');
	audit_request('none');
	$stub->fault(kind => 'errcode:-1', count => 1);
	my $none = import_order();
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $none", 'uploaded',
		'audit_request = none: the next order is uploaded after a fault');
	is(sql("SELECT string_agg(errcode || ' ' || (request IS NULL)::text || ' ' || (request_sha256 IS NOT NULL)::text, ', '
			ORDER BY audit_id) FROM shopping_upload.audit WHERE order_id = $none"),
		'-1 true true, 0 true true', 'no row keeps a body, every row sent keeps its digest');
	audit_request('failed');
	my ($rc, $out, $err) = $node->psql('postgres', "SET shopping_upload.audit_request = 'all'",
		extra_params => [ '-U', 'clerk' ]);
	like($err, qr/permission denied to set parameter/, 'a user who is not superuser cannot change what the audit keeps');
}

# --- data errors are rejected without retry; requeue() puts them back
$stub->reset;
$stub->fault(kind => 'errcode:268485216', count => 1);
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'rejected',
	'a data errcode from WeChat rejects the order');
my $bad = sql(q{SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "INVALID0001"}}')});
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $bad", 'rejected',
	'an order that fails validation is rejected');
is(sql("SELECT last_errcode FROM shopping_upload.order_status WHERE order_id = $bad"), '268485191',
	'with the validator\'s errcode, visible in order_status');
sql("SELECT pg_sleep(0.5)");
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id IN ($id, $bad)"), '2',
	'rejected orders are not retried');
is(scalar @{ $stub->requests('/user-order/orders') }, 1, 'and the invalid one was never sent');
my $queued = sql("SELECT queued_at FROM shopping_upload.order_state WHERE order_id = $id");
is(sql("SELECT shopping_upload.requeue($id)"), '1', 'requeue() takes a rejected order back');
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'and it is uploaded');
is(sql("SELECT queued_at = '$queued' FROM shopping_upload.audit WHERE order_id = $id AND errcode = 0"), 't',
	'its accepted row counts from the commit that queued it, not from requeue() (the 5-second rule)');

# --- giving up: dead after max_attempts; requeue() revives
reload('shopping_upload.max_attempts', '3');
$stub->reset;
$stub->fault(kind => 'errcode:-1', count => 0);
$id = import_order();
wait_for("SELECT state || ' ' || attempts FROM shopping_upload.order_status WHERE order_id = $id", 'dead 3',
	'an order failing max_attempts times is dead');
$stub->clear_faults;
sql("DELETE FROM shopping_upload.orders WHERE order_id = $bad");
is(sql("SELECT shopping_upload.requeue()"), '1', 'requeue() of all dead and rejected orders');
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'the dead order is uploaded after requeue()');
reload('shopping_upload.max_attempts', '10');

# --- the token expiring mid-run is survived
$stub->reset;
my @ids = map { import_order() } 1 .. 5;
$stub->fault(kind => 'expire_tokens');
push @ids, map { import_order() } 1 .. 5;
my $list = join ',', @ids;
wait_for("SELECT count(*) FROM shopping_upload.order_status WHERE order_id IN ($list) AND state = 'uploaded'",
	'10', 'orders queued around a token expiry are all uploaded');

# --- the minute quota waits; the daily quota holds the appid
$stub->reset;
$stub->fault(kind => 'errcode:45011', count => 1);
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'retrying',
	'45011: the order waits');
# against the worker's own time of recording, not this session's later now()
ok(sql("SELECT next_attempt_at >= updated_at + interval '55 seconds' FROM shopping_upload.order_state WHERE order_id = $id") eq 't',
	'45011: at least a minute');
sql("UPDATE shopping_upload.order_state SET next_attempt_at = now() WHERE order_id = $id");
sql("SELECT shopping_upload.enqueue($id)");
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'and is uploaded when it is due');

my $logpos = -s $node->logfile;
$stub->reset;
$stub->fault(kind => 'errcode:45009', count => 1);
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'held',
	'45009: the order is held');
is(sql("SELECT next_attempt_at = date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai' + interval '1 day') AT TIME ZONE 'Asia/Shanghai'
		FROM shopping_upload.order_status WHERE order_id = $id"), 't', 'until the next midnight, Beijing time');
my $id2 = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id2", 'held',
	'other orders of the appid are held too');
is(scalar @{ $stub->requests('/user-order/orders') }, 1, 'without being sent');
ok($node->wait_for_log(qr/uploads for appid "wxtestappid" are held until/, $logpos),
	'a warning says so in the log');
my $log = slurp_file($node->logfile, $logpos);
my @warnings = ($log =~ /are held until/g);
is(scalar @warnings, 1, 'once');

# The hold ends on purpose: requeue() of the held orders ends the appid's
# hold for every worker (it is kept in shared memory, and outlives a worker
# that stops), and a new order is uploaded with them.
sub end_hold
{
	sql("SELECT shopping_upload.requeue(NULL, '{held}')");
	import_order();
}

# a permission error holds the appid for config_retry_interval
end_hold();
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'held orders are uploaded once the hold is over');
$stub->reset;
$stub->fault(kind => 'errcode:48001', count => 1);
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'held',
	'48001: the order is held');
ok(sql("SELECT next_attempt_at > now() + interval '9 minutes' FROM shopping_upload.order_status WHERE order_id = $id") eq 't',
	'for config_retry_interval');
end_hold();
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'and uploaded after it');

# --- SIGHUP: a new api_base_url is followed
reload('shopping_upload.api_base_url', $stub2->url);
$stub->reset;
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'an order is uploaded after the reload');
is(scalar(grep { ($_->{errcode} // -2) == 0 } @{ $stub2->requests('/user-order/orders') }), 1,
	'to the new api_base_url');
is(scalar @{ $stub->requests('/user-order/orders') }, 0, 'not the old one');
reload('shopping_upload.api_base_url', $stub->url);

# --- per-appid rate cap
reload('shopping_upload.max_rate', '10');
$stub->reset;
sql("SELECT " . join(', ', map { import_sql() } 1 .. 30));
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'a burst of 30 orders is uploaded under max_rate');
my @t = sort { $a <=> $b } map { $_->{time} } @{ $stub->requests('/user-order/orders') };
my $worst = 0;
for my $i (0 .. $#t)
{
	my $c = grep { $_ >= $t[$i] && $_ < $t[$i] + 1 } @t;
	$worst = $c if $c > $worst;
}
# The bucket allows a full bucket (10) plus 10 a second: 20 in any second of
# the worker's clock.  Arrival at the stand-in can bunch a few (the first
# requests open connections): 23, where no cap at all would show 30.
ok($worst <= 23, "at most max_rate a second plus a burst of max_rate (worst second: $worst)");
reload('shopping_upload.max_rate', '0');

# --- kill -9 of the worker mid-run: nothing is lost (the answers are slow
# enough that a loaded machine still sees the orders in flight)
$stub->reset;
$stub->fault(kind => 'delay', delay_ms => 3000, count => 0);
sql("SELECT " . join(', ', map { import_sql() } 1 .. 40));
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM shopping_upload.order_state WHERE state = 'uploading'"),
	'orders are in flight');
kill 'KILL', worker_pid();
$stub->clear_faults;
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'after kill -9 of the worker, every order is uploaded');

# --- immediate shutdown and restart: nothing is lost
$stub->fault(kind => 'delay', delay_ms => 3000, count => 0);
sql("SELECT " . join(', ', map { import_sql() } 1 .. 40));
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM shopping_upload.order_state WHERE state = 'uploading'"),
	'orders are in flight at the shutdown');
$node->stop('immediate');
$stub->clear_faults;
$node->start;
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'after an immediate shutdown and restart, every order is uploaded');
is(sql("SELECT count(*) FROM shopping_upload.orders o WHERE NOT EXISTS
		(SELECT FROM shopping_upload.audit a WHERE a.order_id = o.order_id AND a.errcode = 0)"),
	'0', 'every order has an accepted upload in the audit');

# --- a crash empties the due hints (an unlogged table): the worker rebuilds
# them from the states before it claims.  The orders here are queued while
# no worker serves the database, so nothing is in flight at the crash (the
# recovery of leases does not touch them): only the rebuilt hints find them.
reload('shopping_upload.databases', '*, !postgres');
wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'0', 'no worker serves the database');
my @waiting = map { import_order() } 1 .. 10;
is(sql("SELECT count(*) FROM shopping_upload.due h
		JOIN shopping_upload.order_state s USING (order_id)
		WHERE h.kind = 'o' AND s.state = 'pending' AND h.at <= s.next_attempt_at"),
	'10', 'each queued order has its due hint');
sql("ALTER SYSTEM RESET shopping_upload.databases");
my $crashpos = -s $node->logfile;
$node->stop('immediate');
$node->start;
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0',
	'after a crash with queued orders and no lease, every order is uploaded');
like(slurp_file($node->logfile, $crashpos), qr/the due hints were rebuilt from the queue \(\d+ rows planned\)/,
	'the worker rebuilt the due hints the crash emptied');
is(sql("SELECT count(*) FROM shopping_upload.due WHERE kind = '*'"), '1',
	'the hints are marked complete');

# --- SIGTERM during a slow request ends the worker promptly
$stub->fault(kind => 'delay', delay_ms => 60000, count => 0);
reload('shopping_upload.timeout', '120s');
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploading',
	'a slow request is in flight');
my $pid = worker_pid();
kill 'TERM', $pid;
wait_for("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0',
	'SIGTERM ends the worker in the middle of a request');
$stub->clear_faults;
reload('shopping_upload.timeout', '5s');
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'the launcher starts a new worker, which uploads the order');

# --- the statistics view
is(sql("SELECT pending + uploading + retrying + held + rejected + dead = 0 AND uploaded > 100
		AND uploads_last_minute > 0 AND oldest_pending_age IS NULL FROM shopping_upload.stats"),
	't', 'stats: everything uploaded');
# WeChat's 5-second rule over the last hour, from the audit: orders held by
# a quota or killed mid-run above waited longer than 5 s
my ($acc, $share, $p50, $p99, $over) = split /\|/, sql("SELECT accepted_last_hour,
		within_5s_last_hour, extract(epoch FROM commit_to_accepted_p50),
		extract(epoch FROM commit_to_accepted_p99), over_5s_last_hour FROM shopping_upload.stats");
diag "stats: $acc orders accepted in the last hour, share within 5 s $share, p50 $p50 s, p99 $p99 s, $over over 5 s";
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE kind = 'order' AND errcode = 0 AND queued_at IS NOT NULL
		AND created_at > now() - interval '1 hour'"), $acc, 'stats.accepted_last_hour counts the accepted uploads that know their commit');
ok($acc > 100 && $share > 0 && $share <= 1 && $p50 <= $p99, 'and the share within 5 s, p50 <= p99');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE kind = 'order' AND errcode = 0
		AND created_at - queued_at > interval '5 seconds' AND created_at > now() - interval '1 hour'"), $over,
	'stats.over_5s_last_hour counts those accepted more than 5 s after their commit');
# an order accepted 8 s after its commit (its audit row made so) counts
sql("UPDATE shopping_upload.audit SET queued_at = created_at - interval '8 seconds'
	WHERE audit_id = (SELECT max(audit_id) FROM shopping_upload.audit WHERE kind = 'order' AND errcode = 0
		AND created_at - queued_at <= interval '5 seconds')");
is(sql("SELECT over_5s_last_hour FROM shopping_upload.stats"), $over + 1, 'one more over 5 s');
is(sql("SELECT sum(accepted) || ' ' || sum(over_5s) FROM shopping_upload.upload_latency"), "$acc " . ($over + 1),
	'upload_latency: the same per appid');

# --- audit retention: old rows go in small batches
sql("UPDATE shopping_upload.audit SET created_at = now() - interval '2 days' WHERE audit_id % 2 = 0");
my $old = sql("SELECT count(*) FROM shopping_upload.audit WHERE created_at < now() - interval '1 day'");
reload('shopping_upload.audit_retention', '1d');
wait_for("SELECT count(*) FROM shopping_upload.audit WHERE created_at < now() - interval '1 day'", '0',
	"the worker deletes the $old audit rows older than audit_retention");
ok(sql("SELECT count(*) FROM shopping_upload.audit") > 0, 'and keeps the others');

# --- DROP EXTENSION and DROP DATABASE do not hang
sql("DROP EXTENSION shopping_upload");
pass('DROP EXTENSION with the worker running returns');
sql("CREATE EXTENSION shopping_upload");
$id = import_order();
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'after CREATE EXTENSION the worker uploads again');

my $node2 = SuStub::node(name => 'shop', conf => <<"EOC");
shopping_upload.database_name = 'shop'
shopping_upload.api_base_url = '${\ $stub->url}'
EOC
my $logpos2 = -s $node2->logfile;
ok($node2->wait_for_log(qr/database "shop" does not exist; waiting for it/, 0),
	'the launcher waits quietly for a missing database');
$node2->safe_psql('postgres', 'CREATE DATABASE shop');
$node2->safe_psql('shop', 'CREATE EXTENSION shopping_upload');
$node2->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND datname = 'shop'")
  or die 'no worker in shop';
pass('the worker starts once the database exists, with the extension');
($rc, $out, $err) = $node2->psql('postgres', 'DROP DATABASE shop', timeout => 60);
is($rc, 0, 'DROP DATABASE of the worker\'s database succeeds') or diag $err;
$node2->stop;

# --- A request the worker waits for while uploads are in flight (here
# is_trade_managed, which it asks at its start under trade_managed = auto;
# a token fetch is another) moves their transfers on too: their answers,
# finished in that wait, are in no socket any more.  They are recorded once
# the wait ends, not when the worker's longest wait (60 s) runs out.  The
# orders are left leased by a worker stopped with the server, so that the
# new worker's first round sends them (a backlog: the room for more is made
# by answers only), then asks is_trade_managed.
{
	my $up_ms = 1500;         # each upload is answered this late
	my $managed_ms = 5000;    # and is_trade_managed this late
	my $MANAGED = '/wxa/sec/order/is_trade_managed';
	my $node3 = SuStub::node(name => 'sync_wait', conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.timeout = '20s'
shopping_upload.lease = '5min'
shopping_upload.max_inflight = 4
shopping_upload.trade_managed = auto
EOC
	my $sql3 = sub { $node3->safe_psql('postgres', $_[0]) };
	$node3->poll_query_until('postgres', "SELECT count(*) = 1 FROM shopping_upload.trade_apps")
	  or die 'the worker did not ask is_trade_managed at its start';
	$stub->clear_faults;
	$stub->fault(kind => 'delay', delay_ms => $up_ms, count => 0);
	$sql3->("SELECT shopping_upload.import_order('"
		  . SuStub::order_json(out_trade_no => sprintf('SYNCWAIT%04d', $_)) . "'::jsonb)")
	  for 1 .. 12;
	$node3->poll_query_until('postgres',
		"SELECT count(*) = 4 FROM shopping_upload.order_state WHERE state = 'uploading'")
	  or die 'the orders were not sent';
	$node3->stop('fast');
	$stub->fault(kind => 'delay', delay_ms => $managed_ms, count => 1, path => $MANAGED);
	my $sent_before = scalar @{ $stub->requests('/user-order/orders') };
	my $t0 = Time::HiRes::time();
	$node3->start;
	my $limit = 40;
	my ($done, $took);
	while (1)
	{
		$took = Time::HiRes::time() - $t0;
		$done = $sql3->("SELECT count(*) FROM shopping_upload.order_state WHERE state = 'uploaded'") >= 4;
		last if $done || $took > $limit;
		Time::HiRes::usleep(100_000);
	}
	# the condition held: the uploads were sent again before is_trade_managed
	my @ups = @{ $stub->requests('/user-order/orders') }[ $sent_before .. $sent_before + 3 ];
	my @asks = grep { $_->{time} > $t0 } @{ $stub->requests($MANAGED) };
	ok(@asks && (grep { defined $_ && $_->{time} < $asks[0]{time} } @ups) == 4,
		'after the restart the worker sent the 4 leased orders (max_inflight, of a backlog of 12), '
		  . 'then asked is_trade_managed');
	ok($done, "their answers, which came during that request, are recorded when it ends, "
		  . "well before the worker's longest wait (within $limit s of the start)")
	  or diag $sql3->("SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n
		FROM shopping_upload.order_state GROUP BY state) s");
	diag sprintf('restart -> the 4 orders recorded: %.1f s (uploads answered after %.1f s, '
		  . 'is_trade_managed after %.1f s)', $took, $up_ms / 1000, $managed_ms / 1000);
	$stub->clear_faults;
	$node3->stop;
}

done_testing();
