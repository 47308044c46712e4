# upload_shopping_info(): HTTP and HTTPS against the stand-in WeChat server,
# tokens, transport failures, the audit table, secrets, cancellation.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $ca = SuStub::make_ca("$dir/ca");
my $stub = SuStub->start(dir => $dir,
	accounts => 'wxtestappid:testsecret,wxsecond:secret2');
my $tls = SuStub->start(dir => $dir, tls => 1, ca => $ca,
	accounts => 'wxtestappid:testsecret');

# no worker here: this test is about the synchronous path alone
my $node = SuStub::node(conf => <<"EOC");
shopping_upload.database_name = 'no_worker_here'
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.timeout = '5s'
log_statement = 'all'
log_min_messages = debug1
EOC

sub sql { return $node->safe_psql('postgres', $_[0]); }

# for statements of the test itself that hold a token: keep them out of the
# log, which is searched for tokens at the end
sub quiet_sql
{
	local $ENV{PGOPTIONS} = '-c log_statement=none';
	return sql($_[0]);
}

sub import_order
{
	my ($no, %o) = @_;
	my $json = SuStub::order_json(out_trade_no => $no, %o);
	my $appid = $o{appid} ? "'$o{appid}'" : 'NULL';
	return sql("SELECT shopping_upload.import_order('$json', $appid)");
}

sub upload
{
	my ($id, $pre) = @_;
	return sql(($pre // '')
		  . "SELECT errcode || '|' || coalesce(errmsg, '') FROM shopping_upload.upload_shopping_info($id)"
	);
}

# --- a valid order is accepted and WeChat received exactly build_payload's body
my $id = import_order('DEMO_000001');
is(upload($id), '0|ok', 'a valid order answers errcode 0');

my $reqs = $stub->requests('/user-order/orders');
is(scalar @$reqs, 1, 'one upload request reached the stand-in');
my $r = $reqs->[0];
is($r->{headers}{'content-type'}, 'application/json', 'sent as application/json');
ok(length($r->{query}{access_token}) > 20, 'the access token is in the URL');
unlike($r->{body}, qr/\Q$r->{query}{access_token}\E/, 'the token is not in the body');
unlike($r->{body}, qr/testsecret/, 'the secret is not in the body');
like($r->{body}, qr/商品 1/, 'non-ASCII text is sent raw, not \u-escaped');
my $body = $r->{body};
$body =~ s/'/''/g;
is( sql("SELECT ('$body'::jsonb - 'upload_time') = (shopping_upload.build_payload($id) - 'upload_time')"),
	't', 'the body is build_payload() but for upload_time');
is(sql("SELECT request IS NULL AND request_sha256 = sha256(convert_to('$body', 'UTF8'))
		AND sent AND http_status = 200 AND errcode = 0 AND errmsg = 'ok'
		FROM shopping_upload.audit ORDER BY audit_id DESC LIMIT 1"),
	't', 'the audit row holds the digest of the body sent (audit_request = failed: not the body) and the answer');
my $stats = $stub->stats;
is($stats->{by_path}{'/cgi-bin/stable_token'}, 1, 'one stable_token call');

# --- the token is cached and shared by every backend
upload($id) for 1 .. 2;
is($stub->stats->{by_path}{'/cgi-bin/stable_token'}, 1,
	'later uploads from other sessions reuse the shared token');
is(sql("SELECT fetches FROM shopping_upload.token_cache() WHERE appid = 'wxtestappid'"),
	'1', 'token_cache() counts one fetch');

# --- upload_time strictly increases, even within one millisecond
sql("SELECT shopping_upload.upload_shopping_info($id) FROM generate_series(1, 5)");
is(sql("SELECT bool_and(t > p) FROM (SELECT upload_time::timestamptz AS t,
		lag(upload_time::timestamptz) OVER (ORDER BY audit_id) AS p
		FROM shopping_upload.audit WHERE order_id = $id) s WHERE p IS NOT NULL"),
	't', 'upload_time is strictly increasing per order');
like(sql("SELECT upload_time FROM shopping_upload.audit ORDER BY audit_id DESC LIMIT 1"),
	qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/,
	'upload_time is RFC 3339 with milliseconds and an offset');

# --- an invalid order is refused before any request, and audited
$stub->reset;
my $bad = sql(q{SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "BAD_000001"}, "payer": {"openid": "o"}}')});
like(upload($bad), qr/^268485191\|order_list/, 'an invalid order answers its errcode');
is($stub->stats->{requests}, 0, 'nothing was sent for it');
is(sql("SELECT sent::text || coalesce(http_status::text, 'null') || errcode FROM shopping_upload.audit
		WHERE order_id = $bad"), 'falsenull268485191', 'the refusal is audited with no HTTP status');
is(sql("SELECT state FROM shopping_upload.order_state WHERE order_id = $bad"),
	'rejected', 'the order is rejected');

# --- an expired token is refreshed and the upload retried at once
$stub->reset;
$stub->fault(kind => 'expire_tokens');
is(upload($id), '0|ok', 'an expired token is refreshed and the upload succeeds');
my @codes = map { $_->{errcode} // 'token' } @{ $stub->requests };
is("@codes", '40001 token 0', 'rejected, new token, accepted');
is(sql("SELECT string_agg(errcode::text, ',' ORDER BY audit_id) FROM
		(SELECT * FROM shopping_upload.audit WHERE order_id = $id ORDER BY audit_id DESC LIMIT 2) a"),
	'40001,0', 'both attempts are audited');

# --- a token rejected again after a refresh: force_refresh
$stub->reset;
$stub->fault(kind => 'errcode:40001', count => 2);
my $res = upload($id);
like($res, qr/^40001\|/, 'a token rejected twice in one call answers 40001');
is(upload($id), '0|ok', 'the next call forces a fresh token and succeeds');
is($stub->stats->{force_refresh}, 1, 'force_refresh was used once');

# --- WeChat's errcodes and transport failures
my $port = $stub->port;
my @cases = (
	[ { kind => 'errcode:-1' }, qr/^-1\|system error rid: /, 200, 'errcode -1' ],
	[ { kind => 'http500' }, qr/^-1\|HTTP status 500 from 127\.0\.0\.1:$port$/, 500, 'HTTP 500' ],
	[ { kind => 'notjson' }, qr/^-1\|the answer of 127\.0\.0\.1:$port is not a JSON object/, 200, 'a body that is not JSON' ],
	[ { kind => 'drop' }, qr/^-1\|the connection to 127\.0\.0\.1:$port was closed before a complete answer/, undef, 'a dropped connection' ],
	[ { kind => 'delay', delay_ms => 3000 }, qr/^-1\|timed out after 500 ms waiting for 127\.0\.0\.1:$port to answer$/, undef, 'a timeout' ],
	[ { kind => 'errcode:45011' }, qr/^45011\|/, 200, 'the minute quota' ],
	[ { kind => 'errcode:268485216' }, qr/^268485216\|/, 200, 'a data errcode from WeChat' ],
);
for my $c (@cases)
{
	my ($fault, $expect, $status, $name) = @$c;
	$stub->clear_faults;
	$stub->fault(%$fault);
	like(upload($id, "SET shopping_upload.timeout = '500ms';"), $expect, "$name answers as expected");
	my $row = sql("SELECT coalesce(http_status::text, 'null') || '|' || coalesce(transport_error, '')
		FROM shopping_upload.audit ORDER BY audit_id DESC LIMIT 1");
	my ($st, $te) = split /\|/, $row, 2;
	is($st, $status // 'null', "$name: audited HTTP status");
	if ($expect =~ /\^-1/ && $name ne 'errcode -1')
	{
		ok($te ne '', "$name: audited transport error");
	}
}
$stub->clear_faults;

# refused connection
my $closed = PostgreSQL::Test::Cluster::get_free_port();
like(upload($id, "SET shopping_upload.api_base_url = 'http://127.0.0.1:$closed';"),
	qr/^-1\|could not connect to 127\.0\.0\.1:$closed/, 'a refused connection answers -1 and says so');

# a host that never accepts the connection: the connect timeout, not the total one
{
	my $pf = "$dir/blackhole.port";
	my $bh = IPC::Run::start([ 'python3', "$SuStub::srcdir/test/blackhole.py", $pf ]);
	for (1 .. 100) { last if -s $pf; Time::HiRes::usleep(50_000); }
	my $bport = slurp_file($pf);
	like(upload($id, "SET shopping_upload.api_base_url = 'http://127.0.0.1:$bport';
			SET shopping_upload.connect_timeout = '300ms'; SET shopping_upload.timeout = '5s';"),
		qr/^-1\|timed out after 300 ms while connecting to 127\.0\.0\.1:$bport$/,
		'a connection that is never accepted times out after connect_timeout, and says so');
	$bh->kill_kill;
}

# --- HTTPS with the test CA; a wrong CA fails
my $tlsurl = $tls->url;
my $tlsport = $tls->port;
is(upload($id, "SET shopping_upload.api_base_url = '$tlsurl'; SET shopping_upload.ca_file = '$ca/ca.crt';"),
	'0|ok', 'HTTPS with the test CA works');
is(upload($id, "SET shopping_upload.api_base_url = 'https://localhost:$tlsport'; SET shopping_upload.ca_file = '$ca/ca.crt';"),
	'0|ok', 'HTTPS by host name works');
like(upload($id, "SET shopping_upload.api_base_url = '$tlsurl'; SET shopping_upload.ca_file = '$ca/other-ca.crt';"),
	qr/^-1\|TLS failure with 127\.0\.0\.1:$tlsport: /, 'HTTPS with a wrong CA fails');
like(upload($id, "SET shopping_upload.api_base_url = '$tlsurl';"),
	qr/^-1\|TLS failure/, 'HTTPS against the system CAs fails for a test certificate');

# --- plain http only where a superuser allows it (a stand-in of its own:
# the worker, which may retry the order, sends elsewhere)
{
	my $plain = SuStub->start(dir => $dir, name => 'plain_only');
	my $url = $plain->url;
	like(upload($id, "SET shopping_upload.api_base_url = '$url'; SET shopping_upload.allow_insecure_http = off;"),
		qr/^-2\|.*refused to send to 127\.0\.0\.1:\d+ over plain http/,
		'an http:// api_base_url is refused unless allow_insecure_http is on');
	is(scalar @{ $plain->requests }, 0, 'and nothing reached the server');
	$plain->stop;
}

# --- a proxy only where shopping_upload.proxy names one, never from the environment
{
	my $noproxy = PostgreSQL::Test::Cluster::get_free_port();
	like(upload($id, "SET shopping_upload.proxy = 'http://127.0.0.1:$noproxy';"),
		qr/^-1\|could not connect to 127\.0\.0\.1:\d+/, 'shopping_upload.proxy is used when set');
	local $ENV{http_proxy} = "http://127.0.0.1:$noproxy";
	local $ENV{https_proxy} = "http://127.0.0.1:$noproxy";
	local $ENV{all_proxy} = "http://127.0.0.1:$noproxy";
	$node->restart;
	is(upload($id), '0|ok', 'proxy variables in the server\'s environment are ignored');
}
$node->restart;

# --- several merchants: accounts table, handed-in tokens
sql("INSERT INTO shopping_upload.accounts (appid, secret) VALUES ('wxsecond', 'secret2')");
my $second = import_order('SECOND_00001', appid => 'wxsecond');
is(upload($second), '0|ok', 'an appid with a secret in accounts uploads');
my $tok = $stub->tokens->{wxtestappid}{access_token};
# a token handed in as an SQL literal is in the statement: like ALTER ROLE
# ... PASSWORD, it must be kept out of log_statement by the caller
quiet_sql("SELECT shopping_upload.set_access_token('wxthird', '$tok', now() + interval '1 hour')");
my $third = import_order('THIRD_000001', appid => 'wxthird');
is(upload($third), '0|ok', 'an appid with a handed-in token uploads');
my $fourth = import_order('FOURTH_00001', appid => 'wxfourth');
like(upload($fourth), qr/^41004\|no secret and no valid access token for appid "wxfourth"/,
	'an appid with neither answers 41004 and says what to do');

# --- secrets and tokens stay hidden
sql("CREATE ROLE merchant LOGIN;
	GRANT USAGE ON SCHEMA shopping_upload TO merchant;
	GRANT EXECUTE ON FUNCTION shopping_upload.upload_shopping_info(bigint) TO merchant;");
my ($rc, $out, $err) = $node->psql('postgres', 'SHOW shopping_upload.secret',
	extra_params => [ '-U', 'merchant' ]);
like($err, qr/permission denied|must be superuser/, 'a non-superuser cannot SHOW the secret');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT count(*) FROM pg_settings WHERE name = 'shopping_upload.secret'",
	extra_params => [ '-U', 'merchant' ]);
is($out, '0', 'nor see it in pg_settings');
($rc, $out, $err) = $node->psql('postgres', "ALTER DATABASE postgres SET shopping_upload.secret = 'leaky'");
like($err, qr/cannot be stored with ALTER DATABASE/, 'the secret cannot go where every user reads it (pg_db_role_setting)');
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM shopping_upload.accounts',
	extra_params => [ '-U', 'merchant' ]);
like($err, qr/permission denied/, 'nor read the accounts table');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT errcode FROM shopping_upload.upload_shopping_info($id)",
	extra_params => [ '-U', 'merchant' ]);
is($out, '0', 'but a granted role can upload');
my $alltokens = join '|', map { $_->{query}{access_token} // () } @{ $stub->requests };
$alltokens = $tok if $alltokens eq '';
is(quiet_sql("SELECT count(*) FROM shopping_upload.audit WHERE audit::text ~ '$alltokens' OR audit::text LIKE '%testsecret%'"),
	'0', 'no token or secret in the audit table');

# --- cancellation: statement_timeout and pg_cancel_backend end a hanging request
$stub->fault(kind => 'delay', delay_ms => 60000, count => 0);
my $t0 = time;
($rc, $out, $err) = $node->psql('postgres',
	"SET shopping_upload.timeout = '120s'; SET statement_timeout = '1s';
	 SELECT * FROM shopping_upload.upload_shopping_info($id)");
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout cancels a hanging request');
ok(time - $t0 < 30, 'well before the stand-in answers');

my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_safe("SET shopping_upload.timeout = '120s'");
$bg->query_until(qr/started/, "\\echo started\nSELECT * FROM shopping_upload.upload_shopping_info($id);\n");
$node->poll_query_until('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%upload_shopping_info($id)%' AND pid <> pg_backend_pid()"
) or die 'no backend to cancel';
$bg->query('SELECT 1');
like($bg->{stderr}, qr/canceling statement due to user request/, 'pg_cancel_backend cancels a hanging request');
$bg->quit;
$stub->clear_faults;
is(upload($id), '0|ok', 'the backend uploads again after a cancel');

# --- nothing secret in the server log
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$tok\E/, 'the server log holds no access token');
unlike($log, qr/testsecret/, 'nor the secret');
my $leak = grep { index($log, $_->{query}{access_token} // 'none-at-all') >= 0 } @{ $stub->requests };
is($leak, 0, 'no token that was used appears in the log');

done_testing();
