// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// Minimal ERC20 with bulk helpers that make many real transfers per transaction, for tests and benchmarks.
contract Token {
    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint256 supply, address holder) {
        name = name_;
        symbol = symbol_;
        totalSupply = supply;
        balanceOf[holder] = supply;
        emit Transfer(address(0), holder, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "allowance");
            allowance[from][msg.sender] = allowed - value;
        }
        _transfer(from, to, value);
        return true;
    }

    /// One real transfer from the caller per pair.
    function batchTransfer(address[] calldata to, uint256[] calldata values) external {
        require(to.length == values.length, "length");
        for (uint256 i = 0; i < to.length; ++i) _transfer(msg.sender, to[i], values[i]);
    }

    /// n real transfers from the caller; transfer i goes to sprayAccount(r % accounts) with value 1 + (r >> 128) % 1000,
    /// where r = keccak256(abi.encode(seed + i)), so splitting one spray into several (seed, seed + n, ...) gives the same transfers.
    function spray(uint256 n, uint256 seed, uint256 accounts) external {
        require(accounts > 0, "accounts");
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed + i)));
            _transfer(msg.sender, sprayAccount(r % accounts), 1 + (r >> 128) % 1000);
        }
    }

    /// The k-th recipient of spray: a stable address nobody holds a key for.
    function sprayAccount(uint256 k) public pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("chainstore.spray", k)))));
    }

    function _transfer(address from, address to, uint256 value) internal {
        uint256 balance = balanceOf[from];
        require(balance >= value, "balance");
        unchecked {
            balanceOf[from] = balance - value;
        }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
