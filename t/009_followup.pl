# After the upload: the worker's verify of every accepted upload, and the
# shipping information it sends once the order is accepted; the SQL
# functions verify_shopping_info() and upload_shipping_info(); faults of
# the stand-in on both calls; kill -9 of the worker with both in flight.
use strict;
use warnings;
use utf8;

use Encode qw(encode_utf8);

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
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.timeout = '10s'
shopping_upload.lease = '30s'
shopping_upload.verify_delay = '1s'
restart_after_crash = on
EOC

my $VERIFY = '/user-order/shoppinginfo/verify';
my $SHIP = '/user-order/orders/shippings';
my $UPLOAD = '/user-order/orders';

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
sub reload
{
	my ($setting, $value) = @_;
	sql("ALTER SYSTEM SET $setting = '$value'");
	$node->reload;
}
my $n = 0;
sub next_no { return sprintf('F%011d', ++$n); }
sub import_sql
{
	my ($no) = @_;
	my $j = SuStub::order_json(out_trade_no => $no);
	return "shopping_upload.import_order('$j')";
}
# a shipping body for order $no: unified (one shipment) or split (two)
sub ship_json
{
	my ($no, %o) = @_;
	my $mode = $o{mode} // 1;
	my @list =
	  $mode == 1
	  ? ({ tracking_no => $o{tracking} // "SF$no", express_company => 'SF' })
	  : (
		{
			tracking_no => "SF$no-a",
			express_company => 'SF',
			item_list => [ { merchant_item_id => 'sku-1' }, { merchant_item_id => 'sku-2' } ]
		},
		{
			tracking_no => "YT$no-b",
			express_company => 'YTO',
			item_list => [ { merchant_item_id => 'sku-3' } ]
		});
	push @list, { tracking_no => "EXTRA$no", express_company => 'SF' } if $o{extra};
	return SuStub->encode(
		{
			order_key => { order_number_type => 1, mchid => '1230000109', out_trade_no => $no },
			payer => { openid => 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
			upload_time => '2026-01-01T00:00:00+08:00',
			delivery_mode => $mode,
			shipping_list => \@list
		});
}
sub ship_sql { my ($no, %o) = @_; return "shopping_upload.import_shipping('" . ship_json($no, %o) . "')"; }
sub status
{
	my ($id, $cols) = @_;
	return sql("SELECT $cols FROM shopping_upload.order_status WHERE order_id = $id");
}
# requests of the stand-in for one order (its out_trade_no in the body)
sub requests_of
{
	my ($path, $no) = @_;
	return [ grep { index($_->{body}, "\"$no\"") >= 0 } @{ $stub->requests($path) } ];
}

wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'the worker runs');

# --- 1. an accepted upload is verified, verify_delay later, once
my $no = next_no();
my $id = sql('SELECT ' . import_sql($no));
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'the order is uploaded');
is(status($id, 'next_verify_at IS NOT NULL AND verify_result IS NULL'), 't',
	'its verify is planned, not yet made');
wait_for("SELECT verify_result FROM shopping_upload.order_status WHERE order_id = $id", 'linked',
	"the worker verifies it: WeChat's verify_result in order_status");
is(status($id, 'verified_at IS NOT NULL AND next_verify_at IS NULL AND verify_errcode = 0'), 't',
	'verified_at is set, no other verify planned');
my $vreq = requests_of($VERIFY, $no);
is(scalar @$vreq, 1, 'one verify request');
my $vbody = SuStub->decode($vreq->[0]{body});
is_deeply([ sort keys %$vbody ], [ 'order_key', 'payer' ], 'the verify body: order_key and payer');
is($vbody->{payer}{openid}, 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 'with the payer of the order');
my $upload_at = sql("SELECT extract(epoch FROM created_at) FROM shopping_upload.audit
	WHERE order_id = $id AND kind = 'order' AND errcode = 0");
my $verify_at = sql("SELECT extract(epoch FROM created_at) FROM shopping_upload.audit
	WHERE order_id = $id AND kind = 'verify'");
cmp_ok($verify_at - $upload_at, '>=', 0.9, 'no sooner than verify_delay after the accepted upload');
is(sql("SELECT kind || ' ' || via || ' ' || errcode || ' ' || coalesce(verify_result, '-')
	FROM shopping_upload.audit WHERE order_id = $id ORDER BY audit_id"),
	"order worker 0 -\nverify worker 0 linked", 'the audit: kind order, then kind verify with its verify_result');
is(status($id, 'state || uploaded_version'), 'uploaded1', 'the upload columns are untouched');
sleep 2;
is(scalar @{ requests_of($VERIFY, $no) }, 1, 'verified once: no second request');

# WeChat's string is kept verbatim
$no = next_no();
$stub->verify_result(
	order_key => { order_number_type => 1, mchid => '1230000109', out_trade_no => $no },
	verify_result => "未关联 \"quoted\" \\ 'x'");
$id = sql('SELECT ' . import_sql($no));
wait_for("SELECT verified_at IS NOT NULL FROM shopping_upload.order_status WHERE order_id = $id", 't',
	'a second order is verified');
is(status($id, 'verify_result'), encode_utf8("未关联 \"quoted\" \\ 'x'"), 'verify_result kept verbatim');

# --- 2. a failed verify is retried, and never touches the upload
$no = next_no();
$stub->fault(kind => 'errcode:-1', path => $VERIFY, count => 2);
$stub->fault(kind => 'http500', path => $VERIFY, count => 1);
$id = sql('SELECT ' . import_sql($no));
wait_for("SELECT verify_result FROM shopping_upload.order_status WHERE order_id = $id", 'linked',
	'a verify answered -1 twice and HTTP 500 once is retried until it succeeds');
is(sql("SELECT string_agg(errcode::text, ',' ORDER BY audit_id) FROM shopping_upload.audit
	WHERE order_id = $id AND kind = 'verify'"), '-1,-1,-1,0', 'every verify attempt is audited (kind verify)');
is(status($id, "state || ' ' || attempts || ' ' || last_errcode"), 'uploaded 1 0',
	'the order stays uploaded, its attempts and errcode untouched');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND kind = 'order'"), '1',
	'a verify failure never re-uploads the order');

# a verify that fails for good gives up after max_attempts, the upload untouched
reload('shopping_upload.max_attempts', '3');
$no = next_no();
$stub->fault(kind => 'errcode:268435461', path => $VERIFY, count => 0);
$id = sql('SELECT ' . import_sql($no));
wait_for("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND kind = 'verify'", '3',
	'a verify refused every time is tried max_attempts times');
is(status($id, "state || ' ' || verify_errcode || ' ' || (verified_at IS NULL) || ' ' || (next_verify_at IS NULL)"),
	'uploaded 268435461 true true', 'then it stops, its errcode shown; the order stays uploaded');
$stub->clear_faults;
reload('shopping_upload.max_attempts', '10');

# --- 3. verify_shopping_info() by hand
my $r = sql("SELECT errcode || '|' || errmsg || '|' || verify_result FROM shopping_upload.verify_shopping_info($id)");
is($r, '0|ok|linked', 'verify_shopping_info() answers errcode, errmsg and verify_result');
is(status($id, "verify_result || ' ' || (verified_at IS NOT NULL)"), 'linked true',
	'and records it in order_status');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND via = 'sql' AND kind = 'verify'
		AND verify_result = 'linked'"),
	'1', 'audited as via sql, kind verify');
is(sql("SELECT count(*) FROM shopping_upload.verify_shopping_info($id) WHERE errcode = 0"), '1',
	'a second call asks again');

# --- 4. verify_delay = 0: no verify
reload('shopping_upload.verify_delay', '0');
$no = next_no();
$id = sql('SELECT ' . import_sql($no));
wait_for("SELECT state FROM shopping_upload.order_status WHERE order_id = $id", 'uploaded',
	'with verify_delay 0 the order is uploaded');
sleep 2;
is(status($id, 'next_verify_at IS NULL AND verified_at IS NULL'), 't', 'and no verify is planned');
is(scalar @{ requests_of($VERIFY, $no) }, 0, 'nor made');
reload('shopping_upload.verify_delay', '1s');

# --- 5. shipping information goes after its order, and waits for it
$no = next_no();
$stub->fault(kind => 'errcode:-1', path => $UPLOAD, count => 3);
$id = sql('SELECT ' . import_sql($no) . ', ' . ship_sql($no));
$id =~ s/\|.*//;
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'waiting_for_order', 'shipping information of an order not yet accepted waits: waiting_for_order');
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'uploaded', 'it is uploaded once the order is accepted');
my ($oreq) = grep { $_->{errcode} == 0 } @{ requests_of($UPLOAD, $no) };
my $sreq = requests_of($SHIP, $no);
is(scalar @$sreq, 1, 'one shipping request');
cmp_ok($sreq->[0]{seq}, '>', $oreq->{seq}, 'sent after the accepted upload of its order');
is(SuStub->decode($sreq->[0]{body})->{shipping_list}[0]{tracking_no}, "SF$no", 'with the stored shipment');
is(sql("SELECT kind || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id AND kind = 'shipping'"),
	'shipping 0', 'audited with kind shipping');
is(scalar grep({ $_->{errcode} == 0 } @{ $stub->orders }), scalar @{ $stub->orders },
	'the stand-in kept every order');

# a changed shipment is sent again, with a newer upload_time
my $t1 = SuStub->decode($sreq->[0]{body})->{upload_time};
sql("UPDATE shopping_upload.shipments SET tracking_no = 'SFCHANGED' WHERE order_id = $id");
wait_for("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND kind = 'shipping' AND errcode = 0",
	'2', 'a changed shipment is uploaded again');
$sreq = requests_of($SHIP, $no);
my $t2 = SuStub->decode($sreq->[1]{body})->{upload_time};
ok($t2 gt $t1, "with a newer upload_time ($t1 < $t2)");
my ($kept) = grep { $_->{id}[2] eq $no } @{ $stub->orders };
is($kept->{shipping}{shipping_list}[0]{tracking_no}, 'SFCHANGED', 'the stand-in holds the new shipment');
is($kept->{shippings_stale}, 0, 'no shipping upload was older than the one before it');

# split delivery: items of the order
$no = next_no();
$id = sql('SELECT ' . import_sql($no) . ', ' . ship_sql($no, mode => 2));
$id =~ s/\|.*//;
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'uploaded', 'split delivery is uploaded');

# --- 6. refused before sending: a unified delivery with two shipments
$no = next_no();
$id = sql('SELECT ' . import_sql($no) . ', ' . ship_sql($no, extra => 1));
$id =~ s/\|.*//;
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'rejected', 'a shipping body that breaks a rule is rejected');
is(status($id, 'shipping_errcode'), '268485228', "with WeChat's errcode");
is(scalar @{ requests_of($SHIP, $no) }, 0, 'and never sent');
is(status($id, 'state'), 'uploaded', 'its order is uploaded all the same');
# fixing it sends it
sql("DELETE FROM shopping_upload.shipments WHERE order_id = $id AND shipment_no = 1");
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'uploaded', 'once fixed, it is uploaded');

# --- 7. faults on the shipping call: retried, as uploads
$no = next_no();
$stub->fault(kind => 'errcode:-1', path => $SHIP, count => 1);
$stub->fault(kind => 'http502', path => $SHIP, count => 1);
$stub->fault(kind => 'notjson', path => $SHIP, count => 1);
$id = sql('SELECT ' . import_sql($no) . ', ' . ship_sql($no));
$id =~ s/\|.*//;
wait_for("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $id",
	'uploaded', 'shipping information answered -1, HTTP 502, then not JSON is retried until accepted');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id AND kind = 'shipping'"), '4',
	'four attempts audited');

# --- 8. upload_shipping_info() by hand
$r = sql("SELECT errcode || '|' || errmsg || '|' || http_status || '|' || audit_id
	FROM shopping_upload.upload_shipping_info($id)");
my ($ship_audit) = $r =~ /\|(\d+)$/;
$r =~ s/\|\d+$/|true/;
is($r, '0|ok|200|true', 'upload_shipping_info() answers errcode, errmsg, http_status, audit_id');
# (by its audit_id: the worker may verify the order meanwhile)
is(sql("SELECT via || ' ' || kind || ' ' || order_id FROM shopping_upload.audit WHERE audit_id = " . ($ship_audit // 0)),
	"sql shipping $id", 'audited as via sql, kind shipping');
my ($ret, $out, $err) = $node->psql('postgres',
	'SELECT * FROM shopping_upload.upload_shipping_info(' . sql('SELECT ' . import_sql(next_no())) . ')');
like($err, qr/has no shipping information/, 'an order without shipping information is an error that says so');

# --- 9. the stats view
my ($stats, $expect) = split /\|/, sql("SELECT verified || ' ' || awaiting_verification
	|| ' ' || shippings_uploaded || ' ' || shippings_waiting_for_order || ' ' || shippings_pending
	|| ' ' || shippings_failed,
	(SELECT count(*) FROM shopping_upload.order_state WHERE verified_at IS NOT NULL)
	|| ' ' || (SELECT count(*) FROM shopping_upload.order_state WHERE verify_due_at IS NOT NULL)
	|| ' ' || (SELECT count(*) FROM shopping_upload.shipping_state WHERE state = 'uploaded') || ' 0 0 0'
	FROM shopping_upload.stats");
is($stats, $expect, "stats counts verifies and shipping information ($stats)");
like($stats, qr/^[1-9]\d* \d+ [4-9] /, 'several of them');

# --- 10. kill -9 of the worker with uploads, shipping and verifies in flight
$stub->reset;
$stub->fault(kind => 'delay', delay_ms => 2000, count => 0, path => '*');
my @nos = map { next_no() } 1 .. 20;
sql('SELECT ' . join(', ', map { import_sql($_) . ', ' . ship_sql($_) } @nos));
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM shopping_upload.order_state WHERE state = 'uploading'"),
	'orders are in flight');
kill 'KILL', worker_pid();
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM shopping_upload.shipping_state WHERE state = 'uploading'"),
	'after the restart, shipping information is in flight');
kill 'KILL', worker_pid();
$stub->clear_faults;
my $in = join(',', map { "'$_'" } @nos);
wait_for("SELECT count(*) FROM shopping_upload.orders o
	JOIN shopping_upload.order_status s USING (order_id)
	WHERE o.out_trade_no IN ($in) AND s.state = 'uploaded' AND s.shipping_state = 'uploaded'
	AND s.verified_at IS NOT NULL", '20',
	'after two kill -9, every order is uploaded, its shipping information uploaded, and it is verified');
my %stub_has = map { $_->{id}[2] => $_ } @{ $stub->orders };
is(scalar(grep { $stub_has{$_} && $stub_has{$_}{shipping} } @nos), 20,
	'the stand-in holds every order with its shipment');

done_testing();
