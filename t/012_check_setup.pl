# check_setup(): a good set-up, then each item broken alone (the secret
# file's mode, a link, a missing file, a wrong secret, an IP not on the
# allow-list, plain http refused, a CA file that is not there, another
# database, no appid, a role that may not read secrets, no preload).  No
# row ever holds the secret or a token.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);
my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
EOC
my $secret_file = $node->basedir . '/app_secret';

sub sql { return $node->safe_psql('postgres', $_[0]); }
# item|ok (t, f or empty for NULL) of every row, in order
sub items
{
	my ($prefix, $db, $arg) = @_;
	$prefix //= '';
	return $node->safe_psql($db // 'postgres',
		"$prefix SELECT string_agg(item || '=' || coalesce(ok::text, 'null'), ' ')"
		  . " FROM shopping_upload.check_setup($arg)") if defined $arg;
	return $node->safe_psql($db // 'postgres',
		"$prefix SELECT string_agg(item || '=' || coalesce(ok::text, 'null'), ' ')"
		  . ' FROM shopping_upload.check_setup()');
}
sub detail
{
	my ($item, $prefix, $db) = @_;
	$prefix //= '';
	return $node->safe_psql($db // 'postgres',
		"$prefix SELECT detail FROM shopping_upload.check_setup() WHERE item = '$item'");
}
sub all_details { return sql('SELECT string_agg(detail, E\'\\n\') FROM shopping_upload.check_setup()'); }

# the worker is up before the database row is asked about
ok(SuStub::poll_until($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'", '1', 30),
	'the worker runs');

# 1. a good set-up: every item ok, the CA not used over plain http
is(items(), 'version=true preload=true database=true api_base_url=true ca=null appid=true secret=true token=true',
	'a good set-up: every item checked is ok');
like(detail('token'), qr/gave appid "wxtestappid" an access token/, 'the token row says WeChat gave a token');
like(detail('api_base_url'), qr/plain http, allowed by shopping_upload\.allow_insecure_http/,
	'plain http allowed for a test server is said so');
my $tokens = $stub->tokens;
my $token = $tokens->{wxtestappid}{access_token};
ok(defined $token && length $token > 20, 'the stand-in issued a token');
my $all = all_details();
unlike($all, qr/testsecret/, 'no row holds the secret');
unlike($all, qr/\Q$token\E/, 'no row holds the token');

# 2. the secret file, broken three ways, each alone
chmod 0644, $secret_file;
is(items(), 'version=true preload=true database=true api_base_url=true ca=null appid=true secret=false token=null',
	'a secret file others may read: the secret row fails, no token is asked');
like(detail('secret'), qr/may be read or written by others than its owner/, '... and says why');
chmod 0600, $secret_file;
rename $secret_file, "$secret_file.real";
symlink "$secret_file.real", $secret_file;
like(detail('secret'), qr/is a symbolic link/, 'a secret file that is a link is refused');
unlink $secret_file;
like(detail('secret'), qr/does not exist/, 'a missing secret file is said so');
unlike(detail('secret'), qr/\Q$secret_file\E/, 'the row does not name the path (the server log does)');
PostgreSQL::Test::Utils::append_to_file($secret_file, "wrongsecret\n");
chmod 0600, $secret_file;
is(items(), 'version=true preload=true database=true api_base_url=true ca=null appid=true secret=true token=false',
	'a wrong secret: the token row fails');
like(detail('token'), qr/errcode 40125: .*secret_file/, '... with WeChat\'s errcode and what to do');
unlink $secret_file;
rename "$secret_file.real", $secret_file;

# 3. the IP allow-list
$stub->fault(kind => 'errcode:40164', path => '/cgi-bin/stable_token', count => 1);
like(detail('token'), qr/errcode 40164: .*allow-list/, 'an IP not on the allow-list is named, with what to do');
$stub->clear_faults;
like(detail('token'), qr/access token/, 'once the cause is gone, the token row is ok again');

# 4. plain http refused; an https endpoint whose CA file is not there
is(detail('api_base_url', 'SET shopping_upload.allow_insecure_http = off;') =~ /plain http is refused/ ? 1 : 0, 1,
	'plain http without allow_insecure_http is refused');
is(items("SET shopping_upload.allow_insecure_http = off;"),
	'version=true preload=true database=true api_base_url=false ca=null appid=true secret=true token=false',
	'... and its token row fails too');
like(detail('ca', "SET shopping_upload.api_base_url = 'https://127.0.0.1:1'; SET shopping_upload.ca_file = '$dir/no_such_ca.crt';"),
	qr/ca_file \(.*no_such_ca\.crt\) does not exist/, 'a CA file that is not there is named');

# 5. another database: served too by default, unless the settings leave it out
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION shopping_upload');
# the README's set-up: check_setup() is the next statement after CREATE
# EXTENSION, and waits for the worker on its way rather than report it missing
is($node->safe_psql('other', q{SELECT ok FROM shopping_upload.check_setup() WHERE item = 'database'}), 't',
	'another database with the extension gets a worker of its own, found by check_setup() at once');
# in the transaction block of an uncommitted CREATE EXTENSION no worker can
# come: it says so without waiting
$node->safe_psql('postgres', 'CREATE DATABASE third');
like($node->safe_psql('third', q{BEGIN; CREATE EXTENSION shopping_upload;
	SELECT ok || ' ' || detail FROM shopping_upload.check_setup() WHERE item = 'database'; ROLLBACK}),
	qr/^false no worker serves this database \("third"\) after 0 s/,
	'inside the transaction of its CREATE EXTENSION: no worker yet, and no wait');
# nor in a DO block's transaction that created it (no transaction block)
$node->safe_psql('third', q{CREATE TABLE seen (ok boolean, detail text);
	DO $$ BEGIN CREATE EXTENSION shopping_upload;
	  INSERT INTO seen SELECT ok, detail FROM shopping_upload.check_setup() WHERE item = 'database'; END $$});
like($node->safe_psql('third', q{SELECT ok || ' ' || detail FROM seen}),
	qr/^false no worker serves this database \("third"\) after 0 s/,
	'in a DO block that created the extension: no worker yet, and no wait');
$node->safe_psql('postgres', 'DROP DATABASE third');
like(detail('database', '', 'other'), qr/1 worker \(process \d+\) serves this database \("other"\)/,
	'and check_setup() says so');
$node->safe_psql('postgres', q{ALTER SYSTEM SET shopping_upload.databases = 'postgres'});
$node->reload;
ok($node->poll_query_until('other', q{SELECT ok FROM shopping_upload.check_setup() WHERE item = 'database'}, 'f'),
	'a database that shopping_upload.databases leaves out');
like(detail('database', '', 'other'), qr/shopping_upload\.databases .* leaves this database \("other"\) out/,
	'is said so');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET shopping_upload.databases});
$node->reload;

# 6. no appid at all; an appid passed in
like(items("SET shopping_upload.appid = '';"), qr/appid=false$/, 'no appid: the appid row fails, and the check ends there');
like(items('', 'postgres', "'wxother'"), qr/appid=true secret=false token=null/,
	'an appid with no credentials: its secret row fails');

# 7. a role that may not read the secrets
$node->safe_psql('postgres', q{
	CREATE ROLE watcher LOGIN;
	GRANT USAGE ON SCHEMA shopping_upload TO watcher;
	GRANT EXECUTE ON FUNCTION shopping_upload.check_setup(text) TO watcher;
});
is($node->safe_psql('postgres', q{SET ROLE watcher; SELECT string_agg(item || '=' || coalesce(ok::text, 'null'), ' ') FROM shopping_upload.check_setup()}),
	'version=true preload=true database=true api_base_url=true ca=null appid=true secret=null token=null',
	'a role that may not read accounts gets no secret or token row checked');
$node->safe_psql('postgres', q{GRANT SELECT ON shopping_upload.accounts TO watcher});
is($node->safe_psql('postgres', q{SET ROLE watcher; SELECT string_agg(item || '=' || coalesce(ok::text, 'null'), ' ') FROM shopping_upload.check_setup()}),
	'version=true preload=true database=true api_base_url=true ca=null appid=true secret=null token=null',
	'a role that may read accounts but does not own it gets no secret or token row checked either');
$node->safe_psql('postgres', q{REVOKE SELECT ON shopping_upload.accounts FROM watcher});
my ($rc, $out, $err);
$node->safe_psql('postgres', q{REVOKE EXECUTE ON FUNCTION shopping_upload.check_setup(text) FROM watcher});
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE watcher; SELECT 1 FROM shopping_upload.check_setup()});
like($err, qr/permission denied for function check_setup/, 'check_setup() is not for PUBLIC');

# 8. the worker's log lines: which database, appids and endpoint it serves
my $url = $stub->url;
like(slurp_file($node->logfile), qr/shopping_upload worker: serving database "postgres" for appid wxtestappid at \Q$url\E/,
	'the worker says once which database, appid and endpoint it serves');

# 9. a local configuration problem holds orders, never kills them, and a
# reload that fixes it lets them go, without requeue()
my $n = 0;
sub import_order
{
	my $no = sprintf('CS%010d', ++$n);
	return sql("SELECT shopping_upload.import_order('" . SuStub::order_json(out_trade_no => $no) . "')");
}
sub state_of { return sql("SELECT state || ' ' || coalesce(last_errcode::text, '') FROM shopping_upload.order_state WHERE order_id = $_[0]"); }
sql("ALTER SYSTEM SET shopping_upload.allow_insecure_http = off; SELECT pg_reload_conf();");
my $logpos = -s $node->logfile;
my $held = import_order();
ok(SuStub::poll_until($node, 'postgres',
	"SELECT state || ' ' || last_errcode FROM shopping_upload.order_state WHERE order_id = $held", 'held -2', 30),
	'plain http refused: the order is held (errcode -2, a local configuration problem), not retried to death');
like(sql("SELECT last_errmsg FROM shopping_upload.order_state WHERE order_id = $held"),
	qr/refused to send .* over plain http/, '... and its reason says so');
ok(SuStub::poll_until($node, 'postgres', 'SELECT 1', '1', 1), 'the server answers');
like(slurp_file($node->logfile, $logpos), qr/WARNING:  shopping_upload: order $held \(order, appid wxtestappid\) is held after errcode -2: .*\n.*HINT:  This server's settings stop every request/,
	'a held order writes one WARNING, with a hint that says which settings');
sql("ALTER SYSTEM RESET shopping_upload.allow_insecure_http; SELECT pg_reload_conf();");
ok(SuStub::poll_until($node, 'postgres',
	"SELECT state FROM shopping_upload.order_state WHERE order_id = $held", 'uploaded', 30),
	'the reload that fixes it lets the held order go, without requeue()');
like(slurp_file($node->logfile, $logpos), qr/rows held by a local configuration problem are due again/,
	'... and the worker says so');

# 9a. the same with no token cached yet: the token fetch is what plain http
# refuses, and every order of the appid is held as the first one is (the
# token endpoint's backoff answers with the errcode of its last failure)
sql("INSERT INTO shopping_upload.accounts (appid, secret) VALUES ('wxsecond', 'secondsecret')");
sql("ALTER SYSTEM SET shopping_upload.allow_insecure_http = off; SELECT pg_reload_conf();");
my @second;
for my $i (1 .. 3)
{
	my $no = sprintf('SE%010d', $i);
	push @second, sql("SELECT shopping_upload.import_order('" . SuStub::order_json(out_trade_no => $no, appid => 'wxsecond') . "', 'wxsecond')");
}
my $in = join(',', @second);
ok(SuStub::poll_until($node, 'postgres',
	"SELECT count(*) FILTER (WHERE state = 'held' AND last_errcode = -2) FROM shopping_upload.order_state WHERE order_id IN ($in)",
	'3', 30), 'no token cached: all three orders are held with errcode -2');
is(sql("SELECT count(*) FROM shopping_upload.order_state WHERE order_id IN ($in) AND state IN ('retrying', 'dead')"),
	'0', '... none retrying or dead');
sql("ALTER SYSTEM RESET shopping_upload.allow_insecure_http; SELECT pg_reload_conf();");

# 9b. a call by hand refused before sending (here by plain http refused)
# never changes the state of an order WeChat already has
my $up = import_order();
ok(SuStub::poll_until($node, 'postgres',
	"SELECT state FROM shopping_upload.order_state WHERE order_id = $up", 'uploaded', 30),
	'an order is uploaded by the worker');
is(sql("SET shopping_upload.allow_insecure_http = off; SELECT errcode FROM shopping_upload.upload_shopping_info($up)"),
	'-2', 'a call by hand with plain http refused answers -2');
is(sql("SELECT state || ' ' || last_errcode || ' ' || (next_attempt_at IS NULL) FROM shopping_upload.order_state WHERE order_id = $up"),
	'uploaded 0 true', '... and the order stays uploaded, nothing planned: the worker does not send it again');
is(sql("SELECT string_agg(via || ':' || errcode || ':' || sent, ' ' ORDER BY audit_id) FROM shopping_upload.audit WHERE order_id = $up"),
	'worker:0:true sql:-2:false', '... the refused call is audited, as not sent');

# 10. WARNINGs are rate-limited per appid and errcode: three rejected orders, one line
$logpos = -s $node->logfile;
$stub->fault(kind => 'errcode:268485222', count => 3);
my @rejected = map { import_order() } 1 .. 3;
ok(SuStub::poll_until($node, 'postgres',
	"SELECT count(*) FROM shopping_upload.order_state WHERE state = 'rejected' AND order_id IN (" . join(',', @rejected) . ')',
	'3', 30), 'three orders are rejected');
my @lines = (slurp_file($node->logfile, $logpos) =~ /is rejected after errcode 268485222/g);
is(scalar @lines, 1, 'one WARNING for three rejected orders of one appid and errcode within a minute');

# 11. docs/monitoring.md's queries, and its postgres_exporter file's, run as written
my $doc = slurp_file("$FindBin::RealBin/../docs/monitoring.md");
my @blocks = ($doc =~ /```sql\n(.*?)```/sg);
ok(@blocks >= 5, 'docs/monitoring.md has its SQL blocks');
for my $b (@blocks)
{
	my ($rc, $out, $err) = $node->psql('postgres', $b);
	is($rc, 0, "docs/monitoring.md runs: " . (split /\n/, $b)[0]) or diag($err);
}
my $yaml = slurp_file("$FindBin::RealBin/../docs/monitoring/queries.yaml");
my @queries = ($yaml =~ /query: >-\n((?:    .*\n)+)/g);
is(scalar @queries, 5, 'docs/monitoring/queries.yaml has its five queries');
for my $q (@queries)
{
	my ($rc, $out, $err) = $node->psql('postgres', $q);
	is($rc, 0, "queries.yaml runs: " . (split /\n/, $q)[0]) or diag($err);
}

# 12. no shared_preload_libraries
$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;
like(items(), qr/^version=true preload=false database=null /, 'without preload: said so, and no database row is checked');

$node->stop;
$stub->stop;
done_testing();
