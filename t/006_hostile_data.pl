# Hostile and broken data: orders too large to send, answers that are not
# UTF-8, a token endpoint that answers nonsense or keeps failing, an audit
# table far behind its retention, payloads too large to validate at once.
#
#   1. a poison batch: orders over SU_MAX_BODY_BYTES (1 MB) claimed with
#      normal ones are rejected with 45002, never sent, never built in full;
#   2. an errmsg with invalid UTF-8 (an upload's answer, stable_token's) is
#      stored valid (\xFF escapes), in the audit and in order_state;
#   3. stable_token answers that are not JSON, a token of 2000 bytes, an
#      expires_in that is a string or 1e30 (not an integer), {"errcode":0}:
#      the upload fails with -1 and says why (the worker's and
#      upload_shopping_info()'s), the order retries, the worker lives on; a
#      failing endpoint is asked with growing backoff; a negative or huge
#      integer expires_in is clamped to [60, 7200] s and the token cached;
#   4. 5,000 audit rows past retention are gone within seconds;
#   5. validate_payload of a huge payload answers 45002 at once; one of about
#      1 MB ends promptly on statement_timeout / pg_cancel_backend.
#
# Timings are printed with diag; the assertions are about outcomes, except
# the retention deadline of item 4 (10 s, for a job of well under one).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use Digest::MD5 qw(md5_hex);
use SuStub;

my $t_start = time;
my $dir = PostgreSQL::Test::Utils::tempdir();

# one appid per token case, so that each starts with an empty cache slot
# and no failures behind it
my @tok_appids = map { sprintf 'wxtok%02d', $_ } 1 .. 11;
my $stub = SuStub->start(dir => $dir,
	accounts => join(',', 'wxtestappid:testsecret', map { "$_:secret_$_" } @tok_appids, 'wxbadtok'));

my $node = SuStub::node(initdb => [ '--encoding=UTF8', '--locale=C' ], conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.max_attempts = 1000
shopping_upload.timeout = '5s'
shopping_upload.lease = '20s'
shopping_upload.audit_retention = 0
EOC

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub worker_pid
{
	return sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'");
}
sub wait_for
{
	my ($query, $expected, $name) = @_;
	return ok($node->poll_query_until('postgres', $query, $expected), $name);
}
sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }
sub import_sql
{
	my ($no, %o) = @_;
	my $json = SuStub::order_json(out_trade_no => $no, %o);
	return 'shopping_upload.import_order(' . lit($json) . ($o{appid} ? ', ' . lit($o{appid}) : '') . ')';
}
sub import_order { return sql('SELECT ' . import_sql(@_)); }
sub settled
{
	my ($ids, $name) = @_;
	my $list = join ',', @$ids;
	return wait_for("SELECT count(*) FROM shopping_upload.order_state
		WHERE order_id IN ($list) AND state IN ('uploaded', 'rejected', 'dead')",
		scalar(@$ids), $name);
}

sql('INSERT INTO shopping_upload.accounts (appid, secret) VALUES '
	  . join(', ', map { "('$_', 'secret_$_')" } @tok_appids, 'wxbadtok'));

is(sql('SHOW server_encoding'), 'UTF8', 'the database is UTF8 (invalid bytes would matter)');
wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'the worker runs');
my $pid = worker_pid();

# a first upload: the worker has a token and its steady memory
my $warm = import_order('WARM_000001');
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $warm", 'uploaded',
	'a first order is uploaded');

# =====================================================================
# 1. A poison batch: two orders over 1 MB among three normal ones, all
#    committed at once so that one claim takes them all
# =====================================================================
{
	my $rss0 = SuStub::rss_anon_kb($pid);
	$stub->reset;
	# text that does not compress away: md5 hex, 32 bytes a row
	my $mb2 = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 65536) g)";
	my $mb3 = "(SELECT string_agg(md5((-g)::text), '') FROM generate_series(1, 98304) g)";
	my $big_name = SuStub::order_json(out_trade_no => 'BIG_ITEM_0001');
	my $big_key = SuStub::order_json(out_trade_no => 'BIG_KEY_0001');
	my $out = sql("BEGIN;
		SELECT " . import_sql('POISON_OK_01') . ";
		SELECT shopping_upload.import_order(jsonb_set(" . lit($big_name) . "::jsonb,
			'{order_list,0,item_list,0,name}', to_jsonb($mb2)));
		SELECT " . import_sql('POISON_OK_02') . ";
		SELECT shopping_upload.import_order(jsonb_set(" . lit($big_key) . "::jsonb,
			'{order_key,out_trade_no}', to_jsonb($mb3)));
		SELECT " . import_sql('POISON_OK_03') . ";
		COMMIT;");
	my ($ok1, $big1, $ok2, $big2, $ok3) = split /\n/, $out;
	my @ok = ($ok1, $ok2, $ok3);
	my @big = ($big1, $big2);
	is(sql("SELECT string_agg(octet_length(i.name)::text, ',') FROM shopping_upload.items i WHERE order_id = $big1 AND item_no = 0")
		  . ' ' . sql("SELECT octet_length(out_trade_no) FROM shopping_upload.orders WHERE order_id = $big2"),
		'2097152 3145728', 'orders of 2 MB (an item name) and 3 MB (out_trade_no) are stored');

	# sample the worker's private memory while it works on the batch
	my $peak = $rss0 // 0;
	my $list = join ',', @ok, @big;
	my $t0 = time;
	my $done = 0;
	while (time - $t0 < 60)
	{
		for (1 .. 20)
		{
			my $r = SuStub::rss_anon_kb($pid);
			$peak = $r if defined $r && $r > $peak;
			usleep(5_000);
		}
		last if ($done = sql("SELECT count(*) = 5 FROM shopping_upload.order_state
			WHERE order_id IN ($list) AND state IN ('uploaded', 'rejected', 'dead')") eq 't');
	}
	ok($done, 'the batch is settled');
	diag sprintf('poison batch settled in %.2f s', time - $t0);
	is(sql("SELECT string_agg(state, ',' ORDER BY order_id) FROM shopping_upload.order_state WHERE order_id IN ($ok1, $ok2, $ok3)"),
		'uploaded,uploaded,uploaded', 'the three normal orders of the batch are uploaded');
	is(sql("SELECT string_agg(state || ' ' || last_errcode, ',' ORDER BY order_id) FROM shopping_upload.order_state WHERE order_id IN ($big1, $big2)"),
		'rejected 45002,rejected 45002', 'the two big ones are rejected with 45002');
	is(sql("SELECT string_agg(concat_ws(' ', errcode, sent, via, http_status IS NULL), ',' ORDER BY order_id)
		FROM shopping_upload.audit WHERE order_id IN ($big1, $big2)"),
		'45002 f worker t,45002 f worker t', 'each has one audit row: 45002, not sent');
	is(sql("SELECT count(*) || ' ' || max(attempt) FROM shopping_upload.audit WHERE order_id IN ($list) AND via = 'worker'"),
		'5 1', 'five worker attempts, each the first: the batch did not fail as a whole');
	my $req_len = sql("SELECT string_agg(coalesce(octet_length(request::text), -1)::text, ',' ORDER BY order_id)
		FROM shopping_upload.audit WHERE order_id IN ($big1, $big2)");
	diag "audited request of the big orders: $req_len bytes";
	ok(!grep({ $_ < 0 || $_ > 65536 } split /,/, $req_len),
		'whose request is a small document (under 64 kB), never the whole order');
	is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id IN ($big1, $big2)
		AND (strpos(request::text, md5('1')) > 0 OR strpos(request::text, md5('-1')) > 0)"),
		'0', 'and holds none of the big values');
	like(sql("SELECT errmsg FROM shopping_upload.audit WHERE order_id = $big1"), qr/1048576/,
		'the errmsg names the limit');

	my $reqs = $stub->requests('/user-order/orders');
	my @bodies = map { $_->{body} } @$reqs;
	is(scalar @bodies, 3, 'the stand-in received three uploads');
	is(scalar(grep { /POISON_OK_0[123]/ } @bodies), 3, 'the three normal orders');
	# the big values begin with md5('1') and md5('-1')
	my ($m1, $m2) = (md5_hex('1'), md5_hex('-1'));
	is(scalar(grep { /BIG_ITEM_0001|$m1|$m2/ || length($_) > 100_000 } @bodies),
		0, 'and nothing of the big ones');
	is(worker_pid(), $pid, 'the worker is the same process');
	my $rss1 = SuStub::rss_anon_kb($pid);
	diag sprintf('worker RssAnon: before %s kB, peak sampled %s kB, after %s kB',
		$rss0 // '?', $peak, $rss1 // '?');
	ok(defined $rss0 && $peak - $rss0 < 100 * 1024,
		'the worker\'s private memory did not jump by 100 MB or more');

	# the SQL paths
	$stub->reset;
	is(sql("SELECT errcode || ' ' || (http_status IS NULL) FROM shopping_upload.upload_shopping_info($big2)"),
		'45002 true', 'upload_shopping_info() of a big order answers 45002, with no HTTP status');
	is(sql("SELECT errcode FROM shopping_upload.upload_shopping_info($big1)"), '45002',
		'and of the other');
	is(scalar @{ $stub->requests('/user-order/orders') }, 0, 'without sending anything');
	is(sql("SELECT string_agg(concat_ws(' ', errcode, sent, via), ',') FROM shopping_upload.audit
		WHERE order_id = $big2 AND via = 'sql'"), '45002 f sql', 'audited as refused');
	my ($rc, $o, $e) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT shopping_upload.build_payload($big1)");
	like($e, qr/ERROR:\s+54000: .*too large to upload/, 'build_payload() of it raises 54000, "too large to upload"');
	($rc, $o, $e) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT shopping_upload.build_payload($big2)");
	like($e, qr/ERROR:\s+54000: .*too large to upload/, 'and of the 3 MB key');
	is(sql("SELECT count(*) FROM shopping_upload.order_state WHERE order_id IN ($big1, $big2) AND state = 'rejected'"),
		'2', 'both stay rejected');
}

# =====================================================================
# 2. Answers with invalid UTF-8 are stored valid
# =====================================================================
{
	$stub->reset;
	# the worker: errcode -1 whose errmsg has the raw bytes ff fe
	$stub->fault(kind => 'badutf8', count => 0);
	my $id = import_order('UTF8_000001');
	wait_for("SELECT last_errmsg FROM shopping_upload.order_state WHERE order_id = $id",
		'bad \xFF\xFE bytes', 'worker: order_state.last_errmsg holds \xFF\xFE as text escapes');
	$stub->clear_faults;
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
		'the order is uploaded once the answers are sane');
	is(sql("SELECT count(*) FILTER (WHERE errmsg = 'bad \\xFF\\xFE bytes') > 0
			AND count(*) FILTER (WHERE errcode = -1 AND errmsg IS DISTINCT FROM 'bad \\xFF\\xFE bytes') = 0
		FROM shopping_upload.audit WHERE order_id = $id AND via = 'worker'"),
		't', 'worker: every -1 audit row has the escaped errmsg');

	# upload_shopping_info(): 40001 twice, with a raw byte ff in errmsg;
	# read in the same transaction, before the worker may retry it
	my $id2 = import_order('UTF8_000002');
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id2", 'uploaded',
		'a second order is uploaded');
	$stub->fault(kind => 'badutf8:40001', count => 2);
	my $out = sql("BEGIN;
		SELECT errcode || '|' || errmsg FROM shopping_upload.upload_shopping_info($id2);
		SELECT last_errcode || '|' || last_errmsg FROM shopping_upload.order_state WHERE order_id = $id2;
		SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id2 AND via = 'sql'
			AND errcode = 40001 AND strpos(errmsg, '\\xFF rid: ') > 0;
		COMMIT;");
	my ($answer, $state, $n) = split /\n/, $out;
	like($answer, qr/^40001\|invalid credential, access_token is invalid or not latest \\xFF rid: [0-9a-f-]+$/,
		'upload_shopping_info() answers 40001 with the byte as \xFF');
	like($state, qr/^40001\|.* \\xFF rid: /, 'order_state.last_errmsg likewise');
	is($n, '2', 'both 40001 attempts are audited with \xFF');
	wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id2", 'uploaded',
		'the worker then uploads it');

	# stable_token's own errmsg, with a raw byte ff, reaches the audit escaped
	# (errcode 40125 holds that appid: its order waits, nothing else does)
	$stub->fault(kind => 'badutf8:40125', path => '/cgi-bin/stable_token', count => 1);
	my $id3 = import_order('UTF8_000003', appid => 'wxbadtok');
	wait_for("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id3", '1',
		'an order whose token request is answered 40125 with a raw byte ff is audited');
	like(sql("SELECT errcode || '|' || errmsg FROM shopping_upload.audit WHERE order_id = $id3"),
		qr/^40125\|.*errcode 40125, invalid appsecret \\xFF rid: /, 'with the byte as \xFF in its errmsg');

	# every text of the audit and the states is valid UTF-8 (convert_from
	# of the raw bytes verifies them), and reads in LATIN1
	my ($rc, $o, $e) = $node->psql('postgres',
		"SELECT bool_and(convert_from(textsend(t), 'UTF8') = t) FROM
			(SELECT errmsg FROM shopping_upload.audit UNION ALL SELECT transport_error FROM shopping_upload.audit
			 UNION ALL SELECT last_errmsg FROM shopping_upload.order_state) x(t)");
	is("$o|$e", 't|', 'every errmsg, transport_error and last_errmsg is valid UTF-8');
	($rc, $o, $e) = $node->psql('postgres',
		"SET client_encoding = 'LATIN1';
		 SELECT errmsg FROM shopping_upload.audit WHERE order_id IN ($id, $id2) AND errmsg LIKE '%xFF%' ORDER BY audit_id LIMIT 1;
		 SELECT count(*) FROM (SELECT errmsg, transport_error FROM shopping_upload.audit) a;
		 SELECT count(*) FROM (SELECT last_errmsg FROM shopping_upload.order_state) s;");
	is($e, '', 'reading the audit and order_state with client_encoding LATIN1 raises no error');
	like($o, qr/^bad \\xFF\\xFE bytes\n\d+\n\d+$/, 'and gives the escaped text');
}

# =====================================================================
# 3. The token client against a stable_token that answers nonsense
# =====================================================================
my $TOK = '/cgi-bin/stable_token';
my ($bo_appid, $bo_t0, $bo_list, $bo_healed);    # the failing endpoint of 3
{
	my @cases = (
		[ { kind => 'notjson' }, qr/stable_token answered something that is not a JSON object/, 'a body that is not JSON' ],
		[ { kind => 'long_token' }, qr/access_token of 2000 bytes/, 'a token of 2000 bytes' ],
		[ { kind => 'expires_in:"7200"' }, qr/expires_in that is a string, not an integer/, 'an expires_in that is a string' ],
		[ { kind => 'expires_in:1e30' }, qr/expires_in that is a floating-point number, not an integer/, 'an expires_in of 1e30' ],
		[ { kind => 'no_token' }, qr/gave no access token .*errcode -1/, '{"errcode":0} without a token' ],
	);
	my $k = 0;
	for my $c (@cases)
	{
		my ($fault, $errmsg_re, $name) = @$c;
		my $appid = $tok_appids[ $k++ ];
		$stub->reset;
		$stub->fault(%$fault, path => $TOK, count => 0);
		my $u0 = sql('SELECT uploads_last_minute FROM shopping_upload.stats');
		my $t0 = time;
		my $id = import_order("TOKEN_CASE_$k", appid => $appid);
		# one query: where the order stands after its first attempt
		my @f;
		while (time - $t0 < 60)
		{
			@f = split /\|/, sql("SELECT s.state, s.uploaded_version IS NULL,
				(SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND errcode = 0),
				st.uploads_last_minute,
				(SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'),
				a.errcode, a.sent, a.errmsg
				FROM shopping_upload.order_state s CROSS JOIN shopping_upload.stats st
				LEFT JOIN LATERAL (SELECT errcode, sent, errmsg FROM shopping_upload.audit
					WHERE order_id = s.order_id ORDER BY audit_id LIMIT 1) a ON true
				WHERE s.order_id = $id"), 8;
			last if ($f[0] // '') eq 'retrying' && ($f[5] // '') ne '';
			usleep(20_000);
		}
		# heal at once: the next fetch is due a second after the first
		$stub->clear_faults;
		my ($state, $never, $zeros, $u1, $wpid, $code, $sent, $msg) = @f;
		is($state, 'retrying', "$name: after its first attempt the order is retrying");
		is(($code // '') . ' ' . ($sent // ''), '-1 f', "$name: audited with errcode -1, not sent");
		like($msg // '', $errmsg_re, "$name: the errmsg says why");
		is("$zeros $never", '0 t', "$name: never errcode 0, never uploaded");
		ok(defined $u1 && $u1 <= $u0, "$name: stats.uploads_last_minute does not count it ($u0 -> " . ($u1 // '?') . ')');
		is($wpid, $pid, "$name: the worker lives on (same pid)");
		my $fetches = scalar @{ $stub->token_requests($appid) };
		ok($fetches >= 1, "$name: stable_token was asked ($fetches)");
		is(scalar @{ $stub->requests('/user-order/orders') }, 0, "$name: no upload was sent");
		wait_for("SELECT state FROM shopping_upload.order_state WHERE order_id = $id", 'uploaded',
			"$name: once stable_token heals, the order is uploaded");
		diag sprintf('%s: %.1f s from the order to its upload', $name, time - $t0);
	}

	# upload_shopping_info() meets the same answers: it answers -1 and says
	# why, it does not raise (one fault each, taken in turn; fresh appids)
	{
		$stub->reset;
		my @sync = (
			[ { kind => 'notjson' }, qr/^-1\|.*not a JSON object/, 'a body that is not JSON' ],
			[ { kind => 'long_token' }, qr/^-1\|.*access_token of 2000 bytes/, 'a token of 2000 bytes' ],
			[ { kind => 'no_token' }, qr/^-1\|.*gave no access token/, '{"errcode":0} without a token' ],
		);
		# each fault for its own appid: a call that failed leaves its order
		# to the worker, whose token request must not take the next one's
		$_->[3] = $tok_appids[ $k++ ] for @sync;
		$stub->fault(%{ $_->[0] }, path => $TOK, count => 1, appid => $_->[3]) for @sync;
		my @sync_ids;
		for my $c (@sync)
		{
			my $appid = $c->[3];
			my $id = sql('SET shopping_upload.auto_upload = off; SELECT '
				  . import_sql("TOKEN_SYNC_$appid", appid => $appid));
			push @sync_ids, $id;
			my ($rc, $o, $e) = $node->psql('postgres',
				"SELECT errcode || '|' || errmsg FROM shopping_upload.upload_shopping_info($id)");
			like("$o$e", $c->[1], "upload_shopping_info(), stable_token answering $c->[2]: -1 and why, no error");
		}
		# the worker may take an order up once its call failed: what the
		# calls themselves did is in the audit (via 'sql')
		is(sql('SELECT count(*) FILTER (WHERE sent) || \' of \' || count(*) FROM shopping_upload.audit'
			  . " WHERE via = 'sql' AND order_id IN (" . join(',', @sync_ids) . ')'),
			'0 of 3', 'upload_shopping_info(): nothing was sent');
		settled(\@sync_ids, 'the worker then uploads those orders');
		is(sql('SELECT string_agg(DISTINCT state, \',\') FROM shopping_upload.order_state WHERE order_id IN ('
			  . join(',', @sync_ids) . ')'), 'uploaded', 'all three');
	}

	# a negative and a huge expires_in: the token is used and kept for
	# 60 s and 7200 s
	for my $c ([ -5, 60 ], [ 99999999999, 7200 ])
	{
		my ($given, $kept) = @$c;
		my $appid = $tok_appids[ $k++ ];
		$stub->reset;
		$stub->fault(kind => "expires_in:$given", path => $TOK, count => 0);
		my $id = import_order("TOKEN_EXP_$k", appid => $appid);
		wait_for("SELECT state FROM shopping_upload.order_state WHERE order_id = $id", 'uploaded',
			"expires_in $given: the order is uploaded with the token");
		is(sql("SELECT round(extract(epoch FROM expires_at - fetched_at)) FROM shopping_upload.token_cache() WHERE appid = '$appid'"),
			$kept, "expires_in $given: the token is kept for $kept s");
		my @more = map { import_order("TOKEN_EXP_${k}_$_", appid => $appid) } 1 .. 2;
		settled(\@more, "expires_in $given: two more orders of the appid are settled");
		is(sql('SELECT string_agg(state, \',\') FROM shopping_upload.order_state WHERE order_id IN (' . join(',', @more) . ')'),
			'uploaded,uploaded', "expires_in $given: and uploaded");
		is(scalar @{ $stub->token_requests($appid) }, 1,
			"expires_in $given: with the cached token (one stable_token call in all)");
		$stub->clear_faults;
	}

	# a token endpoint that keeps failing: growing backoff per appid
	$bo_appid = $tok_appids[ $k++ ];
	$stub->reset;
	$stub->fault(kind => 'http500', path => $TOK, count => 0);
	$bo_t0 = time;
	$bo_list = join ',', map { import_order("BACKOFF_$_", appid => $bo_appid) } 1 .. 2;
	# meanwhile an appid with a token uploads as usual
	my $other = import_order('BACKOFF_OTHER');
	wait_for("SELECT state FROM shopping_upload.order_state WHERE order_id = $other", 'uploaded',
		'an order of another appid (whose token is cached) is uploaded meanwhile');
	# the window of failure goes on while section 4 runs
}

# =====================================================================
# 4. Retention keeps up: 5,000 rows 40 days old
# =====================================================================
{
	my $d0 = sql('SELECT audit_rows_deleted FROM shopping_upload.stats');
	sql("INSERT INTO shopping_upload.audit (order_id, attempt, via, sent, errcode, created_at)
		SELECT $warm, g, 'worker', false, -1, now() - interval '40 days' - g * interval '1 second'
		FROM generate_series(1, 5000) g");
	# (the worker adds rows meanwhile: the recent ones are counted up to an id)
	my $maxid = sql('SELECT max(audit_id) FROM shopping_upload.audit');
	my $recent_sql = "SELECT count(*) FROM shopping_upload.audit WHERE created_at > now() - interval '30 days' AND audit_id <= $maxid";
	my $recent = sql($recent_sql);
	is(sql("SELECT count(*) FROM shopping_upload.audit WHERE created_at < now() - interval '30 days'"),
		'5000', '5,000 audit rows 40 days old');
	sql("ALTER SYSTEM SET shopping_upload.audit_retention = '30d'");
	$node->reload;
	my $t0 = time;
	ok(SuStub::poll_until($node, 'postgres',
			"SELECT count(*) FROM shopping_upload.audit WHERE created_at < now() - interval '30 days'", '0', 10),
		'within 10 s of the reload they are all gone');
	diag sprintf('retention: 5,000 rows deleted %.2f s after the reload', time - $t0);
	is(sql($recent_sql), $recent, "the $recent recent rows are kept");
	my $d1 = sql('SELECT audit_rows_deleted FROM shopping_upload.stats');
	ok($d1 >= 5000 && $d1 - $d0 >= 5000, "stats.audit_rows_deleted counts them ($d0 -> $d1)");
}

# =====================================================================
# 3 (continued). The failing token endpoint, after 10 s and more
# =====================================================================
{
	my ($t0, $list, $appid) = ($bo_t0, $bo_list, $bo_appid);
	usleep(1_000_000 * (10.5 - (time - $t0))) if time - $t0 < 10.5;
	my $window = time - $t0;
	my @all = map { $_->{time} } @{ $stub->token_requests($appid) };
	my @t = grep { $_ < $t0 + 10.5 } @all;
	my $attempts = sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id IN ($list)
		AND created_at < to_timestamp(${\ ($t0 + 10.5)})");
	my @gaps = map { sprintf '%.2f', $all[$_] - $all[ $_ - 1 ] } 1 .. $#all;
	diag sprintf('backoff: %d stable_token requests in the first 10.5 s (%d in %.1f s), gaps %s; %d upload attempts audited in the 10.5 s',
		scalar @t, scalar @all, $window, join(' ', @gaps) || '-', $attempts);
	ok(@t >= 2 && @t <= 6, 'a failing stable_token is asked only a handful of times in 10 s (' . scalar(@t) . ')');
	ok($attempts > 2 * @t, "not once per attempt ($attempts attempts)");
	ok(@gaps && $gaps[0] >= 0.9, 'the first retry of the fetch waits about a second');
	my $growing = 1;
	for my $i (1 .. $#gaps)
	{
		$growing = 0 unless $gaps[$i] > 1.5 * $gaps[ $i - 1 ];
	}
	ok(@gaps >= 2 && $growing, 'and the waits grow (1 s, 2 s, 4 s, ...)');
	wait_for("SELECT string_agg(DISTINCT state, ',') FROM shopping_upload.order_state WHERE order_id IN ($list)",
		'retrying', 'the orders wait in retrying');
	is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id IN ($list) AND errcode <> -1"),
		'0', 'every attempt is audited with -1');
	is(worker_pid(), $pid, 'the worker lives on');
	$stub->clear_faults;
	$bo_healed = time;
	# the orders are uploaded at the next fetch: checked after section 5
}

# =====================================================================
# 5. Large payloads: refused at once, or cancellable
# =====================================================================
{
	# built as text: 100,000 items (several MB), and 10,000 sub-orders
	# within 1 MB
	sql(<<'EOS');
CREATE TABLE public.hp (name text PRIMARY KEY, p jsonb);
INSERT INTO public.hp SELECT 'items100k', ('{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"HUGE_000001"},'
	|| '"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"logistics_type":1,'
	|| '"order_list":[{"merchant_order_no":"HUGE_000001-1","order_detail_jump_link":{"type":"MINI_PROGRAM","appid":"wxtestappid","path":"/p"},"item_list":['
	|| string_agg(format('{"merchant_item_id":"sku-%s","name":"item %s","unit_price":100,"quantity":1}', g, g), ',')
	|| ']}]}')::jsonb FROM generate_series(1, 100000) g;
INSERT INTO public.hp SELECT 'sub10k', ('{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"WIDE_000001"},'
	|| '"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"logistics_type":1,"order_list":['
	|| string_agg(format('{"merchant_order_no":"%s","item_list":[{"merchant_item_id":"i","name":"n"}]}', g), ',')
	|| ']}')::jsonb FROM generate_series(1, 10000) g;
EOS
	diag 'payload sizes (jsonb text): '
	  . sql("SELECT string_agg(name || ' ' || octet_length(p::text), ', ' ORDER BY name) FROM public.hp");

	# server-side times: clock_timestamp() around the statement
	my $clock = q{SELECT extract(epoch FROM clock_timestamp()) AS t \gset};
	my $since = q{SELECT round(1000 * (extract(epoch FROM clock_timestamp()) - :t));};
	my ($rc, $o, $e) = $node->psql('postgres', "$clock\n"
		  . "SELECT count(*) || ' ' || min(errcode) || ' ' || max(errcode) FROM public.hp, shopping_upload.validate_payload(hp.p) WHERE name = 'items100k';\n"
		  . "$since\n");
	my ($verdict, $huge_ms) = split /\n/, $o;
	is($verdict, '1 45002 45002', 'validate_payload of 100,000 items answers one 45002 row');
	diag sprintf('validate_payload(100,000 items): %s ms', $huge_ms // '?');

	my $stmt = "SELECT count(*) FROM public.hp, shopping_upload.validate_payload(hp.p) WHERE name = 'sub10k'";
	($rc, $o, $e) = $node->psql('postgres', "$clock\n"
		  . "SELECT count(*) || ' ' || count(*) FILTER (WHERE errcode = 45002) FROM public.hp, shopping_upload.validate_payload(hp.p) WHERE name = 'sub10k';\n"
		  . "$since\n");
	my ($full, $full_ms) = split /\n/, $o;
	like($full // '', qr/^\d+ 0$/, 'the payload of 10,000 sub-orders is within the size cap: it is validated');
	diag sprintf('validate_payload(10,000 sub-orders) in full: %s violations in %s ms', (split / /, $full // '?')[0], $full_ms // '?');

	($rc, $o, $e) = $node->psql('postgres', "SET statement_timeout = '100ms';\n$clock\n$stmt;\n"
		  . "RESET statement_timeout;\n$since\n", timeout => 60, on_error_stop => 0);
	# what must hold: the call ended (psql returned, the server answers),
	# by the cancel or with its count; not how a loaded machine splits the
	# output under a 100 ms timer (the clock statements around it may be
	# cancelled too)
	my @lines = split /\n/, $o // '';
	ok(defined $rc && ($e =~ /canceling statement due to statement timeout/
			|| grep({ /^\d+$/ } @lines)),
		'statement_timeout = 100ms: it ends with the cancel error or a result');
	diag sprintf('statement_timeout 100ms: %s after %s ms',
		$e =~ /statement timeout/ ? 'cancelled' : 'finished', $lines[-1] // '?');

	# pg_cancel_backend about 50 ms into the statement
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $bpid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/started/, "\\echo started\n$stmt;\nSELECT 'ended ' || extract(epoch FROM clock_timestamp());\n");
	usleep(50_000);
	my $cancel = sql("SELECT extract(epoch FROM clock_timestamp()) || ' ' || pg_cancel_backend($bpid)");
	my $out = $bg->query_until(qr/finished/, "\\echo finished\n");
	my ($tc) = split / /, $cancel;
	my ($te) = $out =~ /ended (\S+)/;
	my $was_cancelled = $bg->{stderr} =~ /canceling statement due to user request/;
	ok($was_cancelled || $out =~ /^\d+$/m, 'pg_cancel_backend: it ends with the cancel error or a result');
	diag sprintf('pg_cancel_backend: %s; the statement ended %.0f ms after the cancel',
		$was_cancelled ? 'cancelled' : 'finished (the cancel came too late)',
		defined $te ? 1000 * ($te - $tc) : -1);
	$bg->quit;
	is(sql('SELECT 1'), '1', 'the server is fine afterwards');
}

# =====================================================================
# 3 (end). Once the endpoint heals, the orders are uploaded
# =====================================================================
wait_for("SELECT count(*) FROM shopping_upload.order_state WHERE order_id IN ($bo_list) AND state = 'uploaded'",
	'2', 'once stable_token heals, the orders waiting on it are uploaded');
diag sprintf('backoff: uploaded %.1f s after the endpoint healed',
	sql("SELECT extract(epoch FROM min(created_at)) FROM shopping_upload.audit
		WHERE order_id IN ($bo_list) AND errcode = 0") - $bo_healed);


is(worker_pid(), $pid, 'the worker never restarted');
diag sprintf('006 ran in %.1f s', time - $t_start);
done_testing();
